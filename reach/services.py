"""Deleting a vantage point: only one nobody needs, audited (pages and API alike)."""

from django.db import transaction
from django.db.models import ProtectedError

from inventory import audit
from reach.models import VantagePoint


class VantageInUse(Exception):
    """The vantage point cannot go: the message says why and what to do instead."""


def refusal(vantage: VantagePoint) -> str | None:
    """Why ``vantage`` cannot be deleted, or None."""
    if vantage.is_home:
        return (
            f"“{vantage.name}” is the home of zone {vantage.home_of.name}: the zone owns it "
            "(its queue, its workers, the inventory's view), so it goes only with its zone."
        )
    targets = list(vantage.targets.order_by("name").values_list("name", flat=True)[:6])
    if targets:
        listed = ", ".join(f"“{name}”" for name in targets[:5]) + (" and more" if len(targets) > 5 else "")
        return (
            f"Targets are scanned from “{vantage.name}”: {listed}. Remove it from them first "
            "(a target left with none is scanned from its zone's home)."
        )
    if vantage.runs.exists():
        return _has_scanned(vantage)
    return None


def _has_scanned(vantage: VantagePoint) -> str:
    return (
        f"“{vantage.name}” has scanned: its runs and changes name it, so it cannot be deleted. "
        "Stop its workers instead; its view stays as it was last seen."
    )


def delete_vantage(vantage: VantagePoint, user) -> None:
    """Delete ``vantage`` and record it, or raise VantageInUse and change nothing."""
    reason = refusal(vantage)
    if reason:
        raise VantageInUse(reason)
    try:
        with transaction.atomic():
            vantage = audit.record_delete(user, "vantage.delete", vantage)
            vantage.delete()
    except ProtectedError:
        # A run started from it since refusal() looked.
        raise VantageInUse(_has_scanned(vantage)) from None
