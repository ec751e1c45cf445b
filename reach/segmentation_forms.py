"""The segmentation rule form (pages and API) and the filters of the segmentation lists."""

import django_filters
from django import forms

from inventory.choices import RuleScope
from inventory.filters import host_zone_filter
from inventory.forms import ScopedRuleForm
from portwatch.choice_filters import ModelChoiceFilter
from reach.models import SegmentationRule, SegmentationViolation, VantagePoint
from reach.segmentation_choices import SegmentationMode


class SegmentationRuleForm(ScopedRuleForm):
    vantage_points = forms.ModelMultipleChoiceField(
        queryset=VantagePoint.objects.all(),
        required=False,  # checked in clean(), with a message for the mode chosen
        widget=forms.CheckboxSelectMultiple,
        label="Vantage points",
        help_text="The scanner locations the rule is about (a zone's home vantage point is its own scanners).",
    )

    class Meta:
        model = SegmentationRule
        fields = [
            "mode",
            "vantage_points",
            "scope",
            "zone",
            "tag",
            "cidr",
            "protocol",
            "port_start",
            "port_end",
            "justification",
            "owner",
            "ticket",
            "expires_at",
        ]
        labels = {"mode": "These ports are", "port_start": "First port", "port_end": "Last port"}
        help_texts = {
            "mode": "Not reachable from the vantage points chosen; reachable only from them (any other is a "
            "violation); or may be reachable from them whatever a broader rule says (an exception).",
            "port_end": "The same as the first port for a single port.",
            "zone": "For a zone scope.",
        }
        widgets = {
            "justification": forms.Textarea(attrs={"rows": 3}),
            "expires_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("vantage_points") and not self.has_error("vantage_points"):
            if cleaned.get("mode") == SegmentationMode.ONLY:
                message = (
                    "A reachable-only-from rule needs the vantage points that may reach these ports: "
                    "listing none would forbid every one, the zone's own scanners included."
                )
            else:
                message = "Choose at least one vantage point: the rule is about where these ports are reached from."
            self.add_error("vantage_points", message)
        return cleaned


class SegmentationRuleFilter(django_filters.FilterSet):
    """The segmentation rules page's filters."""

    mode = django_filters.ChoiceFilter(choices=SegmentationMode.choices, empty_label="any", label="Mode")
    scope = django_filters.ChoiceFilter(choices=RuleScope.choices, empty_label="any", label="Scope")
    vantage = ModelChoiceFilter(
        queryset=VantagePoint.objects.all(),
        to_field_name="name",
        field_name="vantage_points",
        empty_label="any vantage point",
        label="About",
    )

    class Meta:
        model = SegmentationRule
        fields = ["mode", "scope", "vantage"]


class SegmentationViolationFilter(django_filters.FilterSet):
    """The violations page's filters (each an equality on an indexed column, or the host's zone)."""

    vantage = ModelChoiceFilter(
        queryset=VantagePoint.objects.all(),
        to_field_name="name",
        field_name="vantage",
        empty_label="any vantage point",
        label="Reached from",
        distinct=False,
    )
    zone = host_zone_filter(distinct=False)
    rule = django_filters.UUIDFilter(field_name="rule__public_id", label="Rule id", distinct=False)

    class Meta:
        model = SegmentationViolation
        fields = ["vantage", "zone", "rule"]
