"""The segmentation API: rules (admins write them, as on the pages) and the current violations.

Rules are validated by the page's form (``SegmentationRuleForm``) and saved
through ``reach.segmentation_writes.save_rule``, so the audit trail and the
judgement of what a rule governs (by a worker, after the response) are the page's.
"""

from rest_framework import mixins, serializers, viewsets

from inventory.api import HostRefSerializer, named_filter, with_scope
from inventory.choices import Protocol, RuleScope
from portwatch.api.base import FormSerializer, RelatedIdsField, RoleMixin
from reach import segmentation, segmentation_writes
from reach.models import SegmentationRule, SegmentationViolation
from reach.segmentation_choices import SegmentationMode
from reach.segmentation_forms import SegmentationRuleFilter, SegmentationRuleForm, SegmentationViolationFilter


class SegmentationRuleSerializer(FormSerializer):
    """From where the ports of a scope may be reached; validated by the segmentation page's form."""

    form_class = SegmentationRuleForm
    name_fields = {"zone": "name", "host_zone": "name", "vantage_points": "name"}

    id = serializers.UUIDField(source="public_id", read_only=True)
    mode = serializers.ChoiceField(
        choices=SegmentationMode.choices,
        help_text="deny: not reachable from the vantage points; only: reachable from none but them; "
        "allow: may be reachable from them whatever a broader rule says.",
    )
    vantage_points = RelatedIdsField(
        key="name", child=serializers.CharField(max_length=63), help_text="Names of the vantage points (one at least)."
    )
    scope = serializers.ChoiceField(choices=RuleScope.choices)
    zone = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Zone name (zone scope).")
    tag = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Tag name (tag scope).")
    cidr = serializers.CharField(required=False, allow_blank=True, help_text="Network (cidr scope).")
    host_address = serializers.CharField(required=False, allow_blank=True, help_text="Host address (host scope).")
    host_zone = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="The host's zone, where its address is ambiguous."
    )
    protocol = serializers.ChoiceField(
        choices=SegmentationRule._meta.get_field("protocol").choices, default=Protocol.TCP
    )
    port_start = serializers.IntegerField()
    port_end = serializers.IntegerField(required=False, allow_null=True, help_text="Defaults to port_start.")
    justification = serializers.CharField()
    owner = serializers.CharField(required=False, allow_blank=True)
    ticket = serializers.CharField(required=False, allow_blank=True, help_text="Link to the ticket.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    label = serializers.CharField(source="__str__", read_only=True)
    violations = serializers.IntegerField(
        source="violation_count",
        read_only=True,
        default=0,
        help_text=f"Its current violations, counted up to {segmentation.COUNT_CAP + 1:,} (that many: more).",
    )
    judging = serializers.BooleanField(
        read_only=True,
        default=True,
        help_text="A worker is still working out its violations (after a save): 'violations' is not final yet.",
    )
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, rule):
        data = with_scope(super().to_representation(rule), rule)
        if not hasattr(rule, "violation_count"):  # just saved: not from the annotated list
            data["violations"] = rule.violations.all()[: segmentation.COUNT_CAP + 1].count()
        return data

    def save_form(self):
        rule = segmentation_writes.save_rule(self.context["request"].user, self.form)
        rule.__dict__.pop("violation_count", None)  # counted before the save: counted again
        rule.judging = rule.judgements.exists()
        return rule


class ApiSegmentationRuleFilter(SegmentationRuleFilter):
    vantage = named_filter(SegmentationRuleFilter.base_filters["vantage"])


class SegmentationRuleViewSet(RoleMixin, viewsets.ModelViewSet):
    """Segmentation rules. Admins write them, as on the segmentation page. A worker works out the
    violations of a rule saved after the response ('judging' says it has not yet); deleting one
    makes it govern nothing at once, and a worker lets its violations fall to the next rule, or end
    (each end recorded as a segmentation_kept change)."""

    serializer_class = SegmentationRuleSerializer
    filterset_class = ApiSegmentationRuleFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        rules = (
            segmentation_writes.shown_rules()
            .select_related("zone", "tag", "host__zone", "created_by")
            .prefetch_related("vantage_points")
            .annotate(violation_count=segmentation.ViolationCount())
        )
        return segmentation_writes.with_judging(rules)

    def perform_destroy(self, rule):
        segmentation_writes.remove_rule(self.request.user, rule)


class SegmentationViolationSerializer(serializers.ModelSerializer):
    """A port a vantage point reaches that the rule governing it from there forbids. The host's
    names come from the scanned host: untrusted text."""

    host = HostRefSerializer(read_only=True)
    hostnames = serializers.ListField(source="host.hostnames", child=serializers.CharField(), read_only=True)
    vantage = serializers.CharField(source="vantage.name", read_only=True, help_text="Reached from this vantage point.")
    rule = serializers.UUIDField(source="rule.public_id", read_only=True)
    mode = serializers.CharField(source="rule.mode", read_only=True)
    since = serializers.DateTimeField(read_only=True)

    class Meta:
        model = SegmentationViolation
        fields = ["host", "hostnames", "protocol", "port", "vantage", "rule", "mode", "since"]
        read_only_fields = fields


class ApiSegmentationViolationFilter(SegmentationViolationFilter):
    vantage = named_filter(SegmentationViolationFilter.base_filters["vantage"])
    zone = named_filter(SegmentationViolationFilter.base_filters["zone"])


class SegmentationViolationViewSet(RoleMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The current segmentation violations, newest first, filtered like the violations page."""

    serializer_class = SegmentationViolationSerializer
    filterset_class = ApiSegmentationViolationFilter

    def get_queryset(self):
        return SegmentationViolation.objects.select_related("host__zone", "vantage", "rule").order_by("-id")


def register(router) -> None:
    router.register("segmentation-rules", SegmentationRuleViewSet, basename="segmentation-rule")
    router.register("segmentation-violations", SegmentationViolationViewSet, basename="segmentation-violation")
