"""Reading the kept counts: a handful of indexed rows, whatever the inventory's size.

Each function is one SQL statement over TallyRow (kept rows and pending
deltas together), so what it returns is one consistent moment.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Q, Subquery, Sum, Value

from tallies.choices import EXACT, HOUR
from tallies.models import TallyRow


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour ``at`` falls in (the triggers' HOUR buckets)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Since:
    """Rows of a timed ``figure`` at or after ``at`` (after, if ``strict``), of one ``item`` or of all.

    The hours after ``at``'s hour, plus the exact instants within it: exact
    for any ``at``, and the instants read are those of one hour.
    """

    figure: str
    at: datetime
    strict: bool = False
    item: str | None = None

    def condition(self) -> Q:
        hour = hour_of(self.at)
        within = {"bucket__gt" if self.strict else "bucket__gte": self.at}
        condition = Q(figure=self.figure) & (
            Q(grain=HOUR, bucket__gt=hour) | Q(grain=EXACT, bucket__lt=hour + timedelta(hours=1), **within)
        )
        if self.item is not None:
            condition &= Q(item=self.item)
        return condition


def read(untimed=(), **windows: Since) -> dict[str, dict[str, int]]:
    """{figure: {item: count}} for each untimed figure, and {name: {item: count}} for each window."""
    untimed = list(untimed)
    result: dict[str, dict[str, int]] = {name: {} for name in [*untimed, *windows]}
    where = Q(pk__in=[])
    sums = {}
    if untimed:
        where |= Q(figure__in=untimed, grain=EXACT)
        sums["untimed_total"] = Sum("n", filter=Q(figure__in=untimed, grain=EXACT))
    for name, window in windows.items():
        where |= window.condition()
        sums[name] = Sum("n", filter=window.condition())
    if not sums:
        return result
    for row in TallyRow.objects.filter(where).values("figure", "item").annotate(**sums).order_by():
        item = row["item"]
        if row["figure"] in result and row.get("untimed_total"):
            result[row["figure"]][item] = int(row["untimed_total"])
        for name in windows:
            if row[name]:
                result[name][item] = result[name].get(item, 0) + int(row[name])
    return result


def earliest(figure: str) -> datetime | None:
    """The first instant at which rows of a timed ``figure`` count (the oldest waiting port's first seen).

    Its first hour with a count, then the instants within that hour: an
    hour counting nothing has no instant counting anything.
    """
    first_hour = Subquery(
        TallyRow.objects.filter(figure=figure, grain=HOUR)
        .values("bucket")
        .annotate(total=Sum("n"))
        .filter(total__gt=0)
        .order_by("bucket")
        .values("bucket")[:1]
    )
    hour_end = ExpressionWrapper(first_hour + Value(timedelta(hours=1)), output_field=DateTimeField())
    return (
        TallyRow.objects.filter(figure=figure, grain=EXACT, bucket__gte=first_hour, bucket__lt=hour_end)
        .values("bucket")
        .annotate(total=Sum("n"))
        .filter(total__gt=0)
        .order_by("bucket")
        .values_list("bucket", flat=True)
        .first()
    )
