"""The inventory's API: zones, hosts, services (ports), port rules and review decisions.

Reads use the filters of the list pages (``inventory.filters``); port rules
are validated by the rule page's form and saved with its audit and policy
updates; decisions go through ``inventory.review.decide``, like the review
page's, so the audit trail and the conflict guard are the same.
"""

import copy

import django_filters
from django.db import transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from inventory import audit, policy, review
from inventory.choices import Decision, Protocol, RuleScope
from inventory.filters import HostFilter, ServiceFilter
from inventory.forms import PortRuleForm, ReviewForm
from inventory.models import AuditEntry, Host, PortRule, Service, Zone, tags_of, with_tag_list
from portwatch.api.base import FormSerializer, RoleMixin
from portwatch.api.fast_read import FastRead
from portwatch.roles import Role

REVIEW_ACTIONS = {"review.approve": Decision.APPROVED, "review.reject": Decision.REJECTED}
REVIEW_SCOPE_CHOICES = [(scope.value, scope.label) for scope in review.REVIEW_SCOPES]


def named_filter(filter_):
    """A filter that takes a name (a tag's, a zone's): a string in the schema."""
    return extend_schema_field(OpenApiTypes.STR)(copy.deepcopy(filter_))


# --- zones -----------------------------------------------------------------------


class ZoneSerializer(serializers.ModelSerializer):
    class Meta:
        model = Zone
        fields = ["name", "description", "central", "created_at"]


class ZoneViewSet(RoleMixin, viewsets.ReadOnlyModelViewSet):
    """Network segments; hosts, targets and rules name their zone by ``name``."""

    queryset = Zone.objects.all()
    serializer_class = ZoneSerializer
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"


# --- hosts and services --------------------------------------------------------------


class HostRefSerializer(FastRead, serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    zone = serializers.CharField(source="zone.name", read_only=True)

    class Meta:
        model = Host
        fields = ["id", "address", "zone"]


class ServiceSerializer(FastRead, serializers.ModelSerializer):
    """One port of one host. Names, products and script output come from the
    scanned host: treat them as untrusted text."""

    host = HostRefSerializer(read_only=True)
    last_seen = serializers.DateTimeField(source="seen_at", read_only=True)
    policy_rule = serializers.UUIDField(source="policy_rule.public_id", read_only=True, allow_null=True, default=None)
    risk_label = serializers.CharField(read_only=True)
    review_token = serializers.SerializerMethodField(
        help_text="Send it back to POST /api/reviews/ to decide on this port as you saw it."
    )

    class Meta:
        model = Service
        fields = [
            "id",
            "host",
            "protocol",
            "port",
            "state",
            "name",
            "product",
            "version",
            "extrainfo",
            "identified",
            "scripts",
            "stale",
            "flapping",
            "first_seen",
            "last_seen",
            "last_changed",
            "policy_status",
            "policy_rule",
            "risk",
            "risk_label",
            "review_token",
        ]
        read_only_fields = fields

    def get_review_token(self, service) -> str:
        return review.token_for(service)


class HostPortSerializer(ServiceSerializer):
    class Meta(ServiceSerializer.Meta):
        fields = [name for name in ServiceSerializer.Meta.fields if name != "host"]
        read_only_fields = fields


class HostSerializer(FastRead, serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    zone = serializers.CharField(source="zone.name", read_only=True)
    tags = serializers.SerializerMethodField()
    risk_label = serializers.CharField(read_only=True)

    class Meta:
        model = Host
        fields = [
            "id",
            "address",
            "name",
            "zone",
            "hostnames",
            "status",
            "owner",
            "tags",
            "first_seen",
            "last_seen",
            "last_scanned",
            "open_count",
            "unreviewed_count",
            "violating_count",
            "risk",
            "risk_label",
            "last_change_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), read_only=True))
    def get_tags(self, host) -> list[str]:
        return [tag.name for tag in tags_of(host)]


class HostDetailSerializer(HostSerializer):
    ports = serializers.SerializerMethodField(help_text="Every known port of the host, closed ones included.")

    class Meta(HostSerializer.Meta):
        fields = [*HostSerializer.Meta.fields, "ports"]
        read_only_fields = fields

    @extend_schema_field(HostPortSerializer(many=True))
    def get_ports(self, host):
        services = list(host.services.select_related("policy_rule").order_by("protocol", "port"))
        for service in services:
            service.host = host  # seen_at reads the host: no query per port
        return HostPortSerializer(services, many=True, context=self.context).data


class ApiHostFilter(HostFilter):
    tag = named_filter(HostFilter.base_filters["tag"])


class HostViewSet(RoleMixin, viewsets.ReadOnlyModelViewSet):
    """Hosts, filtered and sorted like the hosts page (``q`` is the page's search box)."""

    serializer_class = HostSerializer
    filterset_class = ApiHostFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return with_tag_list(Host.objects.select_related("zone", "seen_ports"))

    def get_serializer_class(self):
        return HostDetailSerializer if self.action == "retrieve" else HostSerializer


class ApiServiceFilter(ServiceFilter):
    host = django_filters.UUIDFilter(field_name="host__public_id", label="Host id")
    tag = named_filter(ServiceFilter.base_filters["tag"])

    class Meta(ServiceFilter.Meta):
        fields = [*ServiceFilter.Meta.fields, "host"]


class ServiceViewSet(RoleMixin, viewsets.ReadOnlyModelViewSet):
    """Ports across all hosts, filtered like the ports page: open ports unless
    ``state`` says otherwise; ``policy=queue`` is the review queue."""

    serializer_class = ServiceSerializer
    filterset_class = ApiServiceFilter
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return Service.objects.select_related("host__zone", "host__seen_ports", "policy_rule")


# --- port rules ------------------------------------------------------------------------


class PortRuleFilter(django_filters.FilterSet):
    """The rules page's filters."""

    decision = django_filters.ChoiceFilter(choices=Decision.choices)
    scope = django_filters.ChoiceFilter(choices=RuleScope.choices)
    expired = django_filters.BooleanFilter(method="filter_expired", label="Expired")

    class Meta:
        model = PortRule
        fields = ["decision", "scope", "expired"]

    def filter_expired(self, queryset, name, value):
        now = timezone.now()
        if value:
            return queryset.filter(expires_at__lte=now)
        return queryset.exclude(expires_at__lte=now)


def with_scope(data: dict, rule) -> dict:
    """A scoped rule's representation with its scope named: zone, tag, host (address and zone)."""
    data["zone"] = rule.zone.name if rule.zone_id else None
    data["tag"] = rule.tag.name if rule.tag_id else None
    data["host_address"] = rule.host.address if rule.host_id else ""
    data["host_zone"] = rule.host.zone.name if rule.host_id else None
    return data


class PortRuleSerializer(FormSerializer):
    """A decision about a port range within a scope; validated by the rule page's form."""

    form_class = PortRuleForm
    name_fields = {"zone": "name", "host_zone": "name"}

    id = serializers.UUIDField(source="public_id", read_only=True)
    decision = serializers.ChoiceField(choices=Decision.choices)
    scope = serializers.ChoiceField(choices=RuleScope.choices)
    zone = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Zone name (zone scope).")
    tag = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Tag name (tag scope).")
    cidr = serializers.CharField(required=False, allow_blank=True, help_text="Network (cidr scope).")
    host_address = serializers.CharField(required=False, allow_blank=True, help_text="Host address (host scope).")
    host_zone = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="The host's zone, where its address is ambiguous."
    )
    protocol = serializers.ChoiceField(choices=PortRule._meta.get_field("protocol").choices, default=Protocol.TCP)
    port_start = serializers.IntegerField()
    port_end = serializers.IntegerField(required=False, allow_null=True, help_text="Defaults to port_start.")
    justification = serializers.CharField()
    owner = serializers.CharField(required=False, allow_blank=True)
    ticket = serializers.CharField(required=False, allow_blank=True, help_text="Link to the ticket.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    label = serializers.CharField(source="__str__", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, rule):
        return with_scope(super().to_representation(rule), rule)

    def save_form(self):
        """The rule page's save: audited, and the ports it governs re-evaluated."""
        user = self.context["request"].user
        form = self.form
        creating = form.instance._state.adding
        before = None if creating else PortRule.objects.get(pk=form.instance.pk)
        with transaction.atomic():
            if creating:
                form.instance.created_by = user
            rule = form.save()
            after = audit.snapshot(rule)
            old = audit.snapshot(before) if before else None
            if old != after:
                audit.record(user, "rule.create" if creating else "rule.update", rule, before=old, after=after)
            policy.rule_changed(before, rule)
        return rule


class PortRuleViewSet(RoleMixin, viewsets.ModelViewSet):
    """Port rules. Reviewers write them, as on the rules page; deleting one lets
    its ports fall to the next rule, or to unreviewed."""

    serializer_class = PortRuleSerializer
    filterset_class = PortRuleFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    write_role = Role.REVIEWER

    def get_queryset(self):
        return PortRule.objects.select_related("zone", "tag", "host__zone", "created_by")

    def perform_destroy(self, rule):
        with transaction.atomic():
            rule = audit.record_delete(self.request.user, "rule.delete", rule)
            gone = copy.copy(rule)
            rule.delete()
            gone.pk = None
            policy.rule_changed(gone)


# --- review decisions -------------------------------------------------------------------


class DecisionSerializer(serializers.ModelSerializer):
    """A decision taken on one port (an entry of the audit log)."""

    actor = serializers.CharField(source="actor_name", read_only=True)
    decision = serializers.SerializerMethodField()
    service = serializers.SerializerMethodField(help_text="The port's id (GET /api/services/{id}/).")
    justification = serializers.CharField(source="summary", read_only=True)

    class Meta:
        model = AuditEntry
        fields = ["seq", "at", "actor", "decision", "service", "object_repr", "justification", "before", "after"]
        read_only_fields = fields

    def get_decision(self, entry) -> str:
        return REVIEW_ACTIONS.get(entry.action, "")

    def get_service(self, entry) -> int | None:
        return int(entry.object_id) if entry.object_id.isdigit() else None


class DecisionFilter(django_filters.FilterSet):
    decision = django_filters.ChoiceFilter(choices=Decision.choices, method="filter_decision")
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact", label="Who")
    service = django_filters.NumberFilter(method="filter_service", label="Port id")

    class Meta:
        model = AuditEntry
        fields = ["decision", "actor", "service"]

    def filter_decision(self, queryset, name, value):
        return queryset.filter(action={v: k for k, v in REVIEW_ACTIONS.items()}[value])

    def filter_service(self, queryset, name, value):
        return queryset.filter(object_id=str(int(value)))


class ReviewRequestSerializer(serializers.Serializer):
    tokens = serializers.ListField(
        child=serializers.CharField(max_length=48),
        min_length=1,
        max_length=review.MAX_PORTS_PER_DECISION,
        help_text="The review_token of each port, as listed by /api/services/: a port that another "
        "reviewer decided on since then is not decided again (409).",
    )
    decision = serializers.ChoiceField(choices=Decision.choices)
    scope = serializers.ChoiceField(choices=REVIEW_SCOPE_CHOICES)
    tag = serializers.CharField(required=False, allow_blank=True, help_text="Tag name (tag scope).")
    cidr = serializers.CharField(required=False, allow_blank=True, help_text="Network (cidr scope).")
    justification = serializers.CharField()
    owner = serializers.CharField(required=False, allow_blank=True)
    ticket = serializers.CharField(required=False, allow_blank=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate(self, attrs):
        fields = {name: value for name, value in attrs.items() if name != "tokens"}
        form = ReviewForm(data={name: "" if v is None else v for name, v in fields.items()}, tokens=attrs["tokens"])
        if not form.is_valid():
            raise serializers.ValidationError(
                {
                    (field if field != "__all__" else "non_field_errors"): [error["message"] for error in errors]
                    for field, errors in form.errors.get_json_data().items()
                }
            )
        attrs["request"] = form.request()
        return attrs


ReviewOutcomeSerializer = inline_serializer(
    "ReviewOutcome",
    {
        "rules": serializers.ListField(child=serializers.UUIDField(), help_text="The port rules written."),
        "overridden": serializers.ListField(
            child=serializers.IntegerField(), help_text="Ports a more specific rule still governs."
        ),
    },
)
ReviewConflictSerializer = inline_serializer(
    "ReviewConflict",
    {"detail": serializers.CharField(), "conflicts": serializers.ListField(child=serializers.CharField())},
)


class ReviewViewSet(RoleMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Approve or reject ports (reviewers), and the decisions taken so far (everyone)."""

    serializer_class = DecisionSerializer
    filterset_class = DecisionFilter
    write_role = Role.REVIEWER

    def get_queryset(self):
        return AuditEntry.objects.filter(action__in=list(REVIEW_ACTIONS)).order_by("-seq")

    @extend_schema(
        request=ReviewRequestSerializer,
        responses={
            201: ReviewOutcomeSerializer,
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid decision; nothing was written."),
            409: ReviewConflictSerializer,
        },
    )
    def create(self, request):
        """Decide on ports: one rule per distinct port in the chosen scope, audited per port."""
        incoming = ReviewRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        tokens = incoming.validated_data["tokens"]
        try:
            outcome = review.decide(request.user, tokens, incoming.validated_data["request"])
        except review.ReviewConflict as conflict:
            return Response(
                {
                    "detail": "Nothing was applied: another reviewer decided first. Look again and decide anew.",
                    "conflicts": [str(item) for item in conflict.conflicts],
                },
                status=status.HTTP_409_CONFLICT,
            )
        return Response(
            {
                "rules": [str(rule.public_id) for rule in outcome.rules],
                "overridden": [service.pk for service in outcome.overridden],
            },
            status=status.HTTP_201_CREATED,
        )


def register(router) -> None:
    router.register("zones", ZoneViewSet, basename="zone")
    router.register("hosts", HostViewSet, basename="host")
    router.register("services", ServiceViewSet, basename="service")
    router.register("rules", PortRuleViewSet, basename="rule")
    router.register("reviews", ReviewViewSet, basename="review")
