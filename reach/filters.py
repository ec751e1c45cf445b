"""Filters of a vantage point's view (django-filter), shared by its page and the API."""

import django_filters

from inventory.choices import PortState, Protocol
from inventory.constants import PORT_MAX, PORT_MIN
from inventory.filters import host_zone_filter
from portwatch.choice_filters import ModelChoiceFilter
from reach.models import HostView, PortView, VantagePoint


class PortViewFilter(django_filters.FilterSet):
    """A vantage point's page: its open ports, by port and zone."""

    port = django_filters.NumberFilter(field_name="port", min_value=PORT_MIN, max_value=PORT_MAX, label="Port")
    zone = host_zone_filter()

    class Meta:
        model = PortView
        fields = ["port", "zone"]


class HostViewFilter(django_filters.FilterSet):
    """A vantage point's page: the hosts unreachable from there, by zone."""

    zone = host_zone_filter()

    class Meta:
        model = HostView
        fields = ["zone"]


# What /api/port-views/ lists by default: open ports, as /api/services/ does.
STATE_CHOICES = [*PortState.choices, ("all", "all")]


class ApiPortViewFilter(PortViewFilter):
    """``/api/port-views/``: every vantage point's view, or one's (``vantage``), of one host (``host``)."""

    vantage = ModelChoiceFilter(queryset=VantagePoint.objects.all(), to_field_name="name", label="Vantage point (name)")
    host = django_filters.UUIDFilter(field_name="host__public_id", label="Host id")
    protocol = django_filters.ChoiceFilter(choices=Protocol.choices)
    state = django_filters.ChoiceFilter(
        choices=STATE_CHOICES, method="filter_state", label="State (default open; all for every state)"
    )

    class Meta(PortViewFilter.Meta):
        fields = ["vantage", "host", "protocol", "port", "state", "zone"]

    def filter_state(self, queryset, name, value):
        return queryset  # applied in filter_queryset, with the default

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        state = self.form.cleaned_data.get("state") or PortState.OPEN
        return queryset if state == "all" else queryset.filter(state=state)
