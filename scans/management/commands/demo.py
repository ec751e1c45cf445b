"""Set up the demo and run its fleet: the whole loop on loopback in five minutes.

Set-up (idempotent: a second run finds and reuses everything by name) makes a
``demo`` zone, a fast profile with version detection, the "Demo fleet" target
scanned every minute, two approved port rules (SSH and HTTP), and a local log
channel that the built-in alert rules report to. Then the fleet
(``scans.demo``) listens on loopback and changes every ``--change-every``
seconds until Ctrl-C or SIGTERM.

This command is an entry point that wires the apps together, so unlike the
scan engine it also writes to ``alerts`` (the channel).
"""

import signal
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from alerts.choices import ChannelKind
from alerts.models import AlertRule, Channel
from inventory import audit, policy
from inventory.choices import Decision, Protocol, RuleScope
from inventory.models import Host, PortRule, Zone
from inventory.ports import PortSet
from portwatch.roles import GROUP_NAMES, Role
from scans.choices import ScanType, ScheduleKind, Timing
from scans.demo import (
    DEFAULT_FIRST_ADDRESS,
    DEMO_CHANNEL,
    DEMO_OWNER,
    DEMO_PORTS,
    DEMO_PROFILE,
    DEMO_TARGET,
    DEMO_ZONE,
    Fleet,
    FleetError,
    demo_port,
    fleet_range,
)
from scans.models import ScanProfile, ScanTarget
from scans.scope import Scope, ScopeError
from scans.targets import format_targets, parse_targets

# Ports approved in the demo zone (usual port, justification): the rest of
# what the fleet opens waits on the Review page.
APPROVED = [
    (22, "Every demo server is administered over SSH."),
    (80, "web-1 and web-2 serve the demo web site."),
]
SCHEDULE_MINUTES = 1
# How often the fleet looks for its hosts, to name them, until every one is found.
NAMING_SECONDS = 5.0


class Command(BaseCommand):
    help = (
        "Start a small fleet of pretend servers on loopback addresses, a target that scans them every minute "
        "and a local log channel for alerts; the fleet changes every few minutes until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--first-address",
            default=DEFAULT_FIRST_ADDRESS,
            help=f"The fleet's first address; it takes six in a row within 127.0.0.0/8 ({DEFAULT_FIRST_ADDRESS}).",
        )
        parser.add_argument(
            "--change-every", type=float, default=120.0, help="Seconds between changes of the fleet (default 120)."
        )
        parser.add_argument("--steps", type=int, default=0, help="Stop after this many changes (default: run on).")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--setup-only", action="store_true", help="Set up the target and channel, start no fleet.")
        mode.add_argument("--no-setup", action="store_true", help="Run the fleet only (set up by an earlier run).")

    def handle(self, *args, first_address, change_every, steps, setup_only, no_setup, **options):
        try:
            addresses = fleet_range(first_address)
        except FleetError as error:
            raise CommandError(str(error)) from None
        if change_every <= 0:
            raise CommandError("--change-every must be a positive number of seconds.")
        if steps < 0:
            raise CommandError("--steps must be 0 (run on) or more.")
        if not no_setup:
            self.set_up(addresses)
        if not setup_only:
            self.run_fleet(first_address, change_every, steps)

    # --- set-up -------------------------------------------------------------------

    def set_up(self, addresses: str) -> None:
        items = parse_targets(addresses)
        try:
            Scope.current().check_items(items)
        except ScopeError as error:
            raise CommandError(
                f"{error} Allow 127.0.0.0/8 on the Scope page, or pick another --first-address."
            ) from None
        self.states: dict[str, str] = {}
        with transaction.atomic():
            zone = self._zone()
            profile = self._profile()
            target = self._target(zone, profile, format_targets(items))
            rules = self._approvals(zone)
            channel, alert_rules = self._channel()
        self.say(self.style.SUCCESS("PortWatch demo set up:"))
        state = self.states.get
        self.say(f"  zone      {zone.name} {state('zone')}")
        self.say(f"  profile   {profile.name}: the demo's ports, version detection, fast timing {state('profile')}")
        self.say(f"  target    {target.name}: {addresses} {state('target')}")
        self.say(f"            ports {target.ports}, scanned {target.schedule_display}")
        self.say(
            f"  approved  {', '.join(rule.ports_label for rule in rules)} in zone {zone.name} {state('rule')};"
            " the other ports wait on the Review page"
        )
        self.say(f"  channel   {channel.name}, writing {settings.ALERT_LOG_FILE} {state('channel')}")
        self.say(f"            alert rules: {', '.join(alert_rules) or 'none'}")
        self.say(self.style.SUCCESS("Where to look:"))
        self.say(f"  dashboard {settings.SITE_URL}/")
        self.say(f"  login     {self._login_hint()}")
        self.say(f"  alert log tail -f {settings.ALERT_LOG_FILE}")

    def _zone(self) -> Zone:
        zone, created = Zone.objects.get_or_create(
            name=DEMO_ZONE, defaults={"description": "The demo fleet on loopback (manage.py demo)."}
        )
        if created:
            self._audit("zone.create", zone, None)
        self._state("zone", "created" if created else "already there")
        return zone

    def _profile(self) -> ScanProfile:
        wanted = {
            "name": "Demo",
            "description": "The demo fleet: only the target's ports, version detection and TLS certificates "
            "(ssl-cert), fast timing (manage.py demo).",
            "scan_type": ScanType.TCP,
            "version_detection": True,
            "timing": Timing.AGGRESSIVE,
            "max_retries": 1,
            "scripts": ["ssl-cert"],
        }
        return self._update_or_create(ScanProfile, "profile", {"slug": DEMO_PROFILE}, wanted)

    def _target(self, zone: Zone, profile: ScanProfile, targets: str) -> ScanTarget:
        wanted = {
            "zone": zone,
            "targets": targets,
            "ports": str(PortSet.parse(",".join(map(str, DEMO_PORTS)))),
            "profile": profile,
            "enabled": True,
            "schedule_kind": ScheduleKind.INTERVAL,
            "schedule_interval": SCHEDULE_MINUTES,
            "schedule_cron": "",
        }
        target = self._update_or_create(ScanTarget, "target", {"name": DEMO_TARGET}, wanted)
        if target.next_run_at is None:
            # As the target form does: an interval schedule starts at once.
            target.next_run_at = target.schedule.first_slot(timezone.now())
            target.save(update_fields=["next_run_at"])
        return target

    def _approvals(self, zone: Zone) -> list[PortRule]:
        rules = []
        for usual, justification in APPROVED:
            port = demo_port(usual)
            rule = PortRule.objects.filter(
                scope=RuleScope.ZONE, zone=zone, protocol=Protocol.TCP, port_start=port, port_end=port
            ).first()
            if rule is None:
                rule = PortRule.objects.create(
                    scope=RuleScope.ZONE,
                    zone=zone,
                    protocol=Protocol.TCP,
                    port_start=port,
                    port_end=port,
                    decision=Decision.APPROVED,
                    justification=justification,
                    owner=DEMO_OWNER,
                )
                self._audit("rule.create", rule, None)
                policy.rule_changed(None, rule)
                self._state("rule", "created")
            else:
                self._state("rule", "already there")
            rules.append(rule)
        return rules

    def _channel(self) -> tuple[Channel, list[str]]:
        channel = self._update_or_create(
            Channel, "channel", {"name": DEMO_CHANNEL}, {"kind": ChannelKind.LOG, "enabled": True}, ["name", "kind"]
        )
        built_in = list(AlertRule.objects.filter(built_in=True))
        missing = [rule for rule in built_in if not rule.channels.filter(pk=channel.pk).exists()]
        if missing:
            channel.rules.add(*missing)
            self._state("channel", "updated")
            for rule in missing:
                audit.record(
                    None, "alert_rule.update", rule, summary=f"Channel “{channel.name}” added by manage.py demo."
                )
        return channel, [rule.name for rule in built_in if rule.enabled]

    def _update_or_create(self, model, audit_name: str, lookup: dict, wanted: dict, audit_fields=None):
        obj = model.objects.filter(**lookup).first()
        if obj is None:
            obj = model.objects.create(**lookup, **wanted)
            self._audit(f"{audit_name}.create", obj, None, audit_fields)
            self._state(audit_name, "created")
            return obj
        changed = [name for name, value in wanted.items() if getattr(obj, name) != value]
        if changed:
            before = audit.snapshot(obj, audit_fields)
            for name in changed:
                setattr(obj, name, wanted[name])
            if isinstance(obj, ScanTarget) and {"schedule_kind", "schedule_interval"} & set(changed):
                obj.next_run_at = None
            obj.save()
            self._audit(f"{audit_name}.update", obj, before, audit_fields)
        self._state(audit_name, "updated" if changed else "already there")
        return obj

    def _state(self, name: str, state: str) -> None:
        """Remember what set-up did to ``name``; of several objects, the strongest word wins."""
        order = ["", "(already there)", "(updated)", "(created)"]
        word = f"({state})"
        if order.index(word) > order.index(self.states.get(name, "")):
            self.states[name] = word

    def _audit(self, action: str, obj, before: dict | None, fields=None) -> None:
        audit.record(None, action, obj, summary="By manage.py demo.", before=before, after=audit.snapshot(obj, fields))

    def _login_hint(self) -> str:
        admin = (
            get_user_model()
            .objects.filter(groups__name=GROUP_NAMES[Role.ADMIN], is_active=True)
            .order_by("date_joined")
            .first()
        )
        if admin is None:
            return "no admin account yet: python3 manage.py ensure_admin creates one and prints its password"
        name = admin.get_username()
        return (
            f"{name}, with the password printed once when the account was created "
            f"(python3 manage.py changepassword {name} sets a new one)"
        )

    # --- the fleet ----------------------------------------------------------------

    def run_fleet(self, first_address: str, change_every: float, steps: int) -> None:
        fleet = Fleet(first_address)
        try:
            fleet.start()
        except FleetError as error:
            raise CommandError(str(error)) from None
        stop = threading.Event()
        restore = self._on_signals(lambda *_: stop.set())
        try:
            self.say(self.style.SUCCESS(f"{_now()} demo fleet listening (Ctrl-C stops it):"))
            for line in fleet.describe():
                self.say(f"    {line}")
            self._scan_soon()
            self.say(f"{_now()} the fleet changes every {change_every:g} s; each change is printed here.")
            started = time.monotonic()
            done = 0
            unnamed = dict(fleet.addresses)
            while not steps or done < steps:
                deadline = started + (done + 1) * change_every
                # Until the first scans have found every server, look every few seconds to name them.
                while unnamed and time.monotonic() < deadline and not stop.is_set():
                    unnamed = self._name_hosts(unnamed)
                    connection.close()  # the fleet runs for hours: hold no database connection meanwhile
                    stop.wait(min(NAMING_SECONDS, max(0.0, deadline - time.monotonic())))
                if stop.wait(max(0.0, deadline - time.monotonic())):
                    break
                step = fleet.next_step()
                done += 1
                self.say(f"{_now()} change {done}: {step.text}")
                self.say(f"           next scan: {step.expect}")
        finally:
            fleet.stop()
            restore()
            self.say(f"{_now()} demo fleet stopped.")

    def _name_hosts(self, unnamed: dict[str, str]) -> dict[str, str]:
        """Give the fleet's hosts their names (web-1...) once scans have found them, as a person would
        on the host's page; return the servers still to name."""
        zone = Zone.objects.filter(name=DEMO_ZONE).first()
        left = {}
        for name, address in unnamed.items():
            host = Host.objects.filter(zone=zone, address=address).first()
            if host is None:
                left[name] = address
            elif not host.name and Host.objects.filter(pk=host.pk, name="").update(name=name):
                host.name = name
                self._audit("host.update", host, {"name": ""}, ["name"])
        return left

    def _scan_soon(self) -> None:
        """Bring the target's next scan forward to now, the fleet being up."""
        due = ScanTarget.objects.filter(name=DEMO_TARGET, enabled=True).exclude(schedule_kind=ScheduleKind.MANUAL)
        if due.update(next_run_at=timezone.now()):
            self.say(
                f"{_now()} target “{DEMO_TARGET}” scans the fleet now (within {settings.SCHEDULER_TICK_SECONDS} s, "
                "when Celery beat ticks), then every minute."
            )
        else:
            self.say(
                f"{_now()} no scheduled target “{DEMO_TARGET}”: run python3 manage.py demo without --no-setup first."
            )
        # The fleet runs for hours: hold no database connection meanwhile.
        connection.close()

    def _on_signals(self, handler):
        """Stop on SIGINT and SIGTERM; returns a function that puts the old handlers back."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}

        def restore():
            for number, old in previous.items():
                signal.signal(number, old)

        return restore

    def say(self, text: str) -> None:
        # Flushed at once: under the supervisor, stdout is a pipe.
        self.stdout.write(text)
        self.stdout.flush()


def _now() -> str:
    return time.strftime("%H:%M:%S")
