"""Filters of the list pages (django-filter: declared once, validated like forms)."""

from datetime import timedelta

import django_filters
from django import forms
from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from inventory import search
from inventory.choices import HostStatus, PolicyStatus, PortState, Protocol, Severity
from inventory.constants import PORT_MAX, PORT_MIN
from inventory.models import AuditEntry, Host, HostTag, Service, Tag, Zone
from listeners.choices import BIND_BROKEN, BIND_BROKEN_LABEL, Finding
from portwatch.choice_filters import ModelChoiceFilter
from scans import freshness

OPEN_FINDINGS = (Finding.EXPOSED, Finding.FORWARDED)


def fresh_findings(finding: str):
    """Ports the hosts' fresh reports and the scans judge ``finding`` (listeners.PortFinding, kept),
    or (BIND_BROKEN) whose listeners break where a port rule lets them listen."""
    from listeners.models import PortFinding  # noqa: PLC0415 - listeners' models import the inventory's

    cutoff = timezone.now() - timedelta(hours=settings.LISTENER_REPORT_MAX_AGE_HOURS)
    fresh = PortFinding.objects.filter(taken_at__gte=cutoff)
    return fresh.exclude(bind_rule=None) if finding == BIND_BROKEN else fresh.filter(finding=finding)


class AuditFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact", label="Who")
    action = django_filters.ChoiceFilter(choices=(), label="Action")
    object_type = django_filters.ChoiceFilter(choices=(), label="Object type")
    q = django_filters.CharFilter(method="search", label="Object or summary contains")
    since = django_filters.DateFilter(
        field_name="at", lookup_expr="date__gte", label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = django_filters.DateFilter(
        field_name="at", lookup_expr="date__lte", label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "object_type", "q", "since", "until"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offer the values the log holds (a handful of distinct strings).
        for name in ("action", "object_type"):
            values = AuditEntry.objects.order_by(name).values_list(name, flat=True).distinct()
            self.filters[name].extra["choices"] = [(value, value) for value in values if value]

    def search(self, queryset, name, value):
        return queryset.filter(Q(object_repr__icontains=value) | Q(summary__icontains=value))


# --- hosts and ports -------------------------------------------------------------------

CHANGE_AGES = [("1", "last 24 hours"), ("7", "last 7 days"), ("30", "last 30 days")]
RISK_CHOICES = [(str(value), f"{label} or worse") for value, label in reversed(Severity.choices) if value]


def _changed_within(queryset, field: str, days: str):
    return queryset.filter(**{f"{field}__gte": timezone.now() - timedelta(days=int(days))})


# Each sort is backed by an index (inventory.models), so a page of a million
# rows is read in index order instead of sorted.
HOST_SORTS = {
    "risk": ("risk", ["-risk", "address"]),
    "violating": ("violations", ["-violating_count", "address"]),
    "unreviewed": ("unreviewed", ["-unreviewed_count", "address"]),
    "open": ("open ports", ["-open_count", "address"]),
    "changed": ("last change", ["-last_change_at"]),
}
HOST_DEFAULT_SORT = ["address", "zone_id"]
SERVICE_SORTS = {
    "port": ("port", ["port", "host_id", "protocol"]),
    "host": ("host", ["host_id", "protocol", "port"]),
}
# Violations first ("rejected" sorts before "unreviewed"), then the riskiest, then the oldest: the review queue's order.
SERVICE_DEFAULT_SORT = ["policy_status", "-risk", "first_seen"]
SERVICE_RISK_SORT = ["-risk", "first_seen"]


# A tag on at most this many hosts is filtered by the list of its hosts' ids.
SMALL_TAG_HOSTS = 2000


def host_zone_filter(**options) -> ModelChoiceFilter:
    """By the zone of the row's host (``?zone=<name>``): ports, changes, a vantage point's view, violations."""
    return ModelChoiceFilter(
        queryset=Zone.objects.all(),
        to_field_name="name",
        field_name="host__zone",
        empty_label="all zones",
        label="Zone",
        **options,
    )


def tagged_hosts(tag):
    """The hosts carrying ``tag``, for ``host_id__in``: their ids when the tag is small, else a subquery.

    A list sorted by an index walks that index and keeps the rows whose host
    carries the tag. For a tag on half the hosts that finds a page at once;
    for a tag on a hundred hosts out of a million it reads every row (12 s
    for the ports list at 10M ports), and PostgreSQL's estimate for a rare
    tag is too rough to choose for us. With the ids written out it fetches
    the few hosts' rows by their index and sorts them instead.
    """
    ids = list(HostTag.objects.filter(tag=tag).values_list("host_id", flat=True)[: SMALL_TAG_HOSTS + 1])
    if len(ids) <= SMALL_TAG_HOSTS:
        return ids
    return HostTag.objects.filter(tag=tag).values("host_id")


class _InventoryFilter(django_filters.FilterSet):
    """What the host and port lists share: search, zone, tag, owner, risk, change age."""

    q = django_filters.CharFilter(
        method="search",
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "address, network, port, hostname, service or product"}),
    )
    risk = django_filters.ChoiceFilter(choices=RISK_CHOICES, method="filter_risk", label="Risk", empty_label="any")
    changed = django_filters.ChoiceFilter(
        choices=CHANGE_AGES, method="filter_changed", label="Changed in", empty_label="any time"
    )

    def search(self, queryset, name, value):
        return self.search_function(queryset, search.parse(value))

    tag = ModelChoiceFilter(
        queryset=Tag.objects.all(), to_field_name="name", method="filter_tag", empty_label="all tags", label="Tag"
    )
    # How the filtered rows name their host: "pk" for hosts, "host_id" for ports.
    host_key = "pk"

    def filter_risk(self, queryset, name, value):
        return queryset.filter(risk__gte=int(value))

    def filter_tag(self, queryset, name, value):
        return queryset.filter(**{f"{self.host_key}__in": tagged_hosts(value)})

    def sort_by(self, queryset, name, value):
        # Applied last, in filter_queryset.
        return queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return queryset.order_by(*self.ordering(self.form.cleaned_data.get("sort") or ""))


class HostFilter(_InventoryFilter):
    zone = ModelChoiceFilter(queryset=Zone.objects.all(), to_field_name="name", empty_label="all zones", label="Zone")
    owner = django_filters.CharFilter(field_name="owner", lookup_expr="iexact", label="Owner")
    policy = django_filters.ChoiceFilter(
        choices=[
            ("violating", "has violations"),
            ("unreviewed", "has unreviewed ports"),
            ("clean", "everything reviewed"),
        ],
        method="filter_policy",
        label="Policy",
        empty_label="any",
    )
    status = django_filters.ChoiceFilter(choices=HostStatus.choices, empty_label="any")
    finding = django_filters.ChoiceFilter(
        choices=[*Finding.choices, (BIND_BROKEN, BIND_BROKEN_LABEL)],
        method="filter_finding",
        label="Own view",
        empty_label="any",
    )
    scanned = django_filters.ChoiceFilter(
        choices=[("overdue", "not within its schedule")],
        method="filter_scanned",
        label="Scanned",
        empty_label="any time",
    )
    sort = django_filters.ChoiceFilter(
        choices=[(key, label) for key, (label, _) in HOST_SORTS.items()],
        method="sort_by",
        label="Sort",
        empty_label="address",
    )
    search_function = staticmethod(search.filter_hosts)

    class Meta:
        model = Host
        fields = ["q", "zone", "tag", "owner", "policy", "risk", "status", "finding", "changed", "scanned"]

    def ordering(self, sort: str) -> list:
        return HOST_SORTS[sort][1] if sort in HOST_SORTS else HOST_DEFAULT_SORT

    def filter_policy(self, queryset, name, value):
        if value == "violating":
            return queryset.filter(violating_count__gt=0)
        if value == "unreviewed":
            return queryset.filter(unreviewed_count__gt=0)
        return queryset.filter(violating_count=0, unreviewed_count=0)

    def filter_changed(self, queryset, name, value):
        return _changed_within(queryset, "last_change_at", value)

    def filter_finding(self, queryset, name, value):
        return queryset.filter(pk__in=fresh_findings(value).values("host_id"))

    def filter_scanned(self, queryset, name, value):
        # The overview's "not scanned within their schedule" figure, as a list.
        return queryset.filter(freshness.overdue_hosts(timezone.now()))


class ServiceFilter(_InventoryFilter):
    zone = host_zone_filter()
    owner = django_filters.CharFilter(field_name="host__owner", lookup_expr="iexact", label="Owner")
    port = django_filters.NumberFilter(field_name="port", min_value=PORT_MIN, max_value=PORT_MAX)
    protocol = django_filters.ChoiceFilter(choices=Protocol.choices, empty_label="any")
    state = django_filters.ChoiceFilter(
        choices=[*PortState.choices, ("all", "any state")], method="filter_state", empty_label="open"
    )
    policy = django_filters.ChoiceFilter(
        choices=[*PolicyStatus.choices, ("queue", "unreviewed or violating")],
        method="filter_policy",
        label="Policy",
        empty_label="any",
    )
    # What an open port can be (the others no scan finds open: the hosts list and the host pages show them).
    finding = django_filters.ChoiceFilter(
        choices=[
            *((value, label) for value, label in Finding.choices if value in OPEN_FINDINGS),
            (BIND_BROKEN, BIND_BROKEN_LABEL),
        ],
        method="filter_finding",
        label="Own view",
        empty_label="any",
    )
    sort = django_filters.ChoiceFilter(
        choices=[(key, label) for key, (label, _) in SERVICE_SORTS.items()],
        method="sort_by",
        label="Sort",
        empty_label="risk",
    )
    search_function = staticmethod(search.filter_services)
    host_key = "host_id"

    class Meta:
        model = Service
        fields = ["q", "zone", "tag", "owner", "port", "protocol", "state", "policy", "risk", "finding", "changed"]

    def filter_queryset(self, queryset):
        # Open ports unless another state is asked for.
        if not self.form.cleaned_data.get("state"):
            queryset = queryset.filter(state=PortState.OPEN)
        return super().filter_queryset(queryset)

    def filter_finding(self, queryset, name, value):
        same = {"host_id": OuterRef("host_id"), "protocol": OuterRef("protocol"), "port": OuterRef("port")}
        return queryset.filter(Exists(fresh_findings(value).filter(**same)))

    def ordering(self, sort: str) -> list:
        if sort in SERVICE_SORTS:
            return SERVICE_SORTS[sort][1]
        query = search.parse(self.form.cleaned_data.get("q") or "")
        if self.form.cleaned_data.get("port") is not None or query.port:
            # One port: its hosts in index order (they share the port's risk anyway).
            return SERVICE_SORTS["port"][1]
        if query.text or self.form.cleaned_data.get("finding"):
            # A service or product, or a finding of the host's own view: read in host
            # order, so that a page stops after a hundred matches instead of sorting
            # every match by risk (1.0 s for "listening and reachable" at 100,000 hosts).
            return SERVICE_SORTS["host"][1]
        # The queue's order where a policy status is chosen (its index leads
        # with the status), else risk then age.
        return SERVICE_DEFAULT_SORT if self.form.cleaned_data.get("policy") else SERVICE_RISK_SORT

    def filter_state(self, queryset, name, value):
        return queryset if value == "all" else queryset.filter(state=value)

    def filter_policy(self, queryset, name, value):
        if value == "queue":
            return queryset.filter(policy_status__in=[PolicyStatus.UNREVIEWED, PolicyStatus.REJECTED])
        return queryset.filter(policy_status=value)

    def filter_changed(self, queryset, name, value):
        return _changed_within(queryset, "last_changed", value)
