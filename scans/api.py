"""The scan engine's API: changes, targets, schedules, profiles, runs, imports and the scan scope.

Targets, schedules, profiles and scope rules are validated by the pages'
forms (targets are parsed and checked against the scan scope there); runs
start and stop and scope rules are added and removed through
``scans.services``, imports go through ``scans.ingest.imports``, with the same
audit entries as the pages.
"""

import django_filters
from django.conf import settings
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from inventory import audit
from inventory.api import HostRefSerializer, named_filter
from inventory.choices import Protocol
from inventory.constants import DEFAULT_ZONE, PORT_MAX, PORT_MIN
from inventory.models import Zone
from portwatch.api.base import FormSerializer, RelatedIdsField, RoleMixin, save_audited
from portwatch.api.fast_read import FastRead
from portwatch.choice_filters import ModelChoiceFilter
from reach.models import VantagePoint
from scans import scope_rules, services
from scans.choices import PortScope, ProfileKind, RunStatus, ScanType, ScheduleKind, ScopeAction, Timing, Trigger
from scans.constants import MASSCAN_DEFAULT_RATE, NSE_SCRIPT_ALLOWLIST
from scans.filters import ChangeFilter
from scans.forms import DEFAULT_PROFILE, ImportForm, ScanProfileForm, ScanTargetForm, ScopeRuleForm
from scans.ingest.imports import import_scan_file
from scans.models import Change, ChunkAttempt, ScanChunk, ScanProfile, ScanRun, ScanTarget, ScopeRule
from scans.nmap_xml import NmapXmlError
from scans.scope import ScopeError
from scans.targets import TargetSpecError

# --- changes -------------------------------------------------------------------------


class ChangeSerializer(FastRead, serializers.ModelSerializer):
    """Something a scan saw differ. ``before``/``after`` hold what the scanned host
    announced (service names, products): untrusted text."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    run = serializers.UUIDField(
        source="run.public_id",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The scan that saw it; null for a change that follows from a rule (segmentation).",
    )
    host = HostRefSerializer(read_only=True)
    vantage = serializers.CharField(
        source="vantage.name", read_only=True, allow_null=True, default=None, help_text="Where it was seen from."
    )

    class Meta:
        model = Change
        fields = [
            *("id", "run", "host", "vantage", "kind", "protocol", "port"),
            *("before", "after", "flapping", "created_at"),
        ]
        read_only_fields = fields


class ApiChangeFilter(ChangeFilter):
    host = django_filters.UUIDFilter(field_name="host__public_id", label="Host id")
    run = django_filters.UUIDFilter(field_name="run__public_id", label="Run id")
    tag = named_filter(ChangeFilter.base_filters["tag"])
    protocol = django_filters.ChoiceFilter(choices=Protocol.choices)
    port = django_filters.NumberFilter(field_name="port", min_value=PORT_MIN, max_value=PORT_MAX)

    class Meta(ChangeFilter.Meta):
        fields = [*ChangeFilter.Meta.fields, "host", "run", "protocol", "port"]


class ChangeViewSet(RoleMixin, viewsets.ReadOnlyModelViewSet):
    """The changes feed, newest first, with the changes page's filters."""

    serializer_class = ChangeSerializer
    filterset_class = ApiChangeFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return Change.objects.select_related("run", "host__zone", "vantage").order_by("-created_at", "-id")


# --- targets and schedules ---------------------------------------------------------------


class TargetSerializer(FormSerializer):
    """What to scan, which ports, with which profile and when; validated by the target page's form."""

    form_class = ScanTargetForm
    name_fields = {"zone": "name", "profile": "slug", "vantage_points": "name"}

    id = serializers.UUIDField(source="public_id", read_only=True)
    name = serializers.CharField(max_length=100)
    zone = serializers.CharField(default=DEFAULT_ZONE, help_text="Zone name.")
    targets = serializers.CharField(
        help_text="Addresses, networks, ranges or hostnames within the scan scope, separated by spaces, "
        "commas or new lines; stored one per line."
    )
    ports = serializers.CharField(
        required=False, allow_blank=True, help_text="e.g. 22,80,8000-8100; empty: the profile's ports."
    )
    profile = serializers.CharField(default=DEFAULT_PROFILE, help_text="Profile slug.")
    vantage_points = RelatedIdsField(
        key="name",
        child=serializers.SlugField(max_length=63),
        required=False,
        help_text="Names of the vantage points to scan it from, one run each; empty: the zone's home.",
    )
    enabled = serializers.BooleanField(default=True)
    schedule_kind = serializers.ChoiceField(choices=ScheduleKind.choices, default=ScheduleKind.MANUAL)
    schedule_interval = serializers.IntegerField(required=False, allow_null=True, help_text="Minutes (interval).")
    schedule_cron = serializers.CharField(required=False, allow_blank=True, help_text="Five-field cron (cron).")
    schedule_timezone = serializers.CharField(default=settings.TIME_ZONE)
    next_run_at = serializers.DateTimeField(read_only=True)
    last_skipped_slot = serializers.DateTimeField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, target):
        data = super().to_representation(target)
        data["zone"], data["profile"] = target.zone.name, target.profile.slug
        return data

    def save_form(self):
        if self.form.instance._state.adding:
            self.form.instance.created_by = self.context["request"].user
        return save_audited(self.context["request"].user, self.form, "target")


class TargetViewSet(RoleMixin, viewsets.ModelViewSet):
    """Scan targets: everyone reads them, admins change them (audited)."""

    serializer_class = TargetSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return ScanTarget.objects.select_related("zone", "profile").prefetch_related("vantage_points")

    def perform_destroy(self, target):
        with transaction.atomic():
            target = audit.record_delete(self.request.user, "target.delete", target)
            target.delete()


class ScheduleSerializer(FormSerializer):
    """A target's schedule; validated by the target page's form like the rest of the target."""

    form_class = ScanTargetForm
    name_fields = {"zone": "name", "profile": "slug", "vantage_points": "name"}

    target = serializers.UUIDField(source="public_id", read_only=True)
    name = serializers.CharField(read_only=True)
    enabled = serializers.BooleanField(required=False)
    schedule_kind = serializers.ChoiceField(choices=ScheduleKind.choices)
    schedule_interval = serializers.IntegerField(required=False, allow_null=True, help_text="Minutes (interval).")
    schedule_cron = serializers.CharField(required=False, allow_blank=True, help_text="Five-field cron (cron).")
    schedule_timezone = serializers.CharField(required=False)
    description = serializers.CharField(source="schedule_display", read_only=True)
    next_run_at = serializers.DateTimeField(read_only=True)
    last_skipped_slot = serializers.DateTimeField(read_only=True)

    def base_form_data(self):
        # The rest of the target, as it is: a schedule change leaves it alone.
        return TargetSerializer(self.instance).data

    def save_form(self):
        return save_audited(self.context["request"].user, self.form, "target")


class ScheduleViewSet(
    RoleMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """When each target runs: manual, every N minutes, or a cron expression."""

    serializer_class = ScheduleSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "target"

    def get_queryset(self):
        return ScanTarget.objects.select_related("zone", "profile").prefetch_related("vantage_points")


# --- profiles ------------------------------------------------------------------------------


class ProfileSerializer(FormSerializer):
    """A vetted set of nmap options: there is no free-text option."""

    form_class = ScanProfileForm

    name = serializers.CharField(max_length=100)
    slug = serializers.SlugField(max_length=50)
    description = serializers.CharField(required=False, allow_blank=True)
    builtin = serializers.BooleanField(read_only=True)
    scan_type = serializers.ChoiceField(choices=ScanType.choices, default=ScanType.TCP)
    port_scope = serializers.ChoiceField(choices=PortScope.choices, default=PortScope.TOP)
    top_ports = serializers.IntegerField(default=1000)
    version_detection = serializers.BooleanField(default=False)
    timing = serializers.ChoiceField(choices=Timing.choices, default=Timing.AGGRESSIVE)
    max_retries = serializers.IntegerField(default=2)
    resolve_names = serializers.BooleanField(default=False)
    scripts = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(NSE_SCRIPT_ALLOWLIST.items())), required=False
    )
    kind = serializers.ChoiceField(
        choices=ProfileKind.choices,
        default=ProfileKind.NMAP,
        help_text="fast_discovery: masscan sweeps at masscan_rate, nmap confirms what it found.",
    )
    masscan_rate = serializers.IntegerField(
        default=MASSCAN_DEFAULT_RATE, help_text="Packets/s of the masscan sweep; at most MASSCAN_MAX_RATE."
    )
    discover_hosts = serializers.BooleanField(
        default=True, help_text="Sweep every port only of the addresses that answer host discovery."
    )

    def save_form(self):
        return save_audited(self.context["request"].user, self.form, "profile")


class ProfileViewSet(RoleMixin, viewsets.ModelViewSet):
    """Scan profiles. Built-in ones are part of PortWatch and cannot be changed."""

    queryset = ScanProfile.objects.all()
    serializer_class = ProfileSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def get_object(self):
        profile = super().get_object()
        if self.request.method not in ("GET", "HEAD", "OPTIONS") and profile.builtin:
            raise exceptions.PermissionDenied("Built-in profiles are part of PortWatch: copy one instead.")
        return profile

    def perform_destroy(self, profile):
        with transaction.atomic():
            profile = audit.record_delete(self.request.user, "profile.delete", profile)
            profile.delete()


# --- runs -------------------------------------------------------------------------------------


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChunkAttempt
        fields = ["number", "worker", "outcome", "error", "started_at", "finished_at"]
        read_only_fields = fields


class ChunkSerializer(serializers.ModelSerializer):
    tries = AttemptSerializer(many=True, read_only=True, help_text="Every attempt at the chunk, with its error.")

    class Meta:
        model = ScanChunk
        fields = [
            "index",
            "step",
            "status",
            "size",
            "ports",
            "found",
            "attempts",
            "tries",
            "retry_at",
            "hosts_up",
            "coverage",
            "confirmation",
            "error",
            "queued_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    target = serializers.UUIDField(source="target.public_id", read_only=True, allow_null=True, default=None)
    target_name = serializers.CharField(source="target.name", read_only=True, allow_null=True, default=None)
    zone = serializers.CharField(source="zone.name", read_only=True)
    vantage = serializers.CharField(
        source="vantage.name", read_only=True, allow_null=True, default=None, help_text="Where it scans from."
    )
    profile = serializers.CharField(source="profile.slug", read_only=True, allow_null=True, default=None)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True, default=None)
    progress_percent = serializers.IntegerField(read_only=True)
    is_terminal = serializers.BooleanField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ScanRun
        fields = [
            "id",
            "target",
            "target_name",
            "zone",
            "vantage",
            "profile",
            "trigger",
            "scanner",
            "status",
            "is_terminal",
            "requested_by",
            "targets",
            "ports",
            "nmap_options",
            "masscan_options",
            "schedule_slot",
            "cancel_requested",
            "hosts_total",
            "hosts_done",
            "hosts_up",
            "progress_percent",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    chunks = serializers.SerializerMethodField(help_text="The run's chunks (at most 1,000).")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "chunks"]
        read_only_fields = fields

    @extend_schema_field(ChunkSerializer(many=True))
    def get_chunks(self, run):
        return ChunkSerializer(run.chunks.prefetch_related("tries")[:1000], many=True).data


class RunStartedSerializer(RunDetailSerializer):
    """A run just started, from the target's first vantage point (its zone's home first), and the others'."""

    also_started = serializers.SerializerMethodField(
        help_text="The runs started at the same time from the target's other vantage points (one each), "
        "without their chunks: follow their ids."
    )

    class Meta(RunDetailSerializer.Meta):
        fields = [*RunDetailSerializer.Meta.fields, "also_started"]
        read_only_fields = fields

    @extend_schema_field(RunSerializer(many=True))
    def get_also_started(self, run):
        return RunSerializer(self.context.get("also_started", []), many=True).data


class RunStartSerializer(serializers.Serializer):
    target = serializers.UUIDField(help_text="The target's id.")
    address = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="Scan only this address or hostname of the target."
    )


class RunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=Trigger.choices)
    target = django_filters.UUIDFilter(field_name="target__public_id", label="Target id")
    zone = ModelChoiceFilter(queryset=Zone.objects.all(), to_field_name="name")
    vantage = ModelChoiceFilter(queryset=VantagePoint.objects.all(), to_field_name="name")

    class Meta:
        model = ScanRun
        fields = ["status", "trigger", "target", "zone", "vantage"]


class RunViewSet(RoleMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Runs: their status and progress (everyone); start and cancel (admins)."""

    serializer_class = RunSerializer
    filterset_class = RunFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return ScanRun.objects.select_related("target", "zone", "vantage", "profile", "requested_by").order_by(
            "-created_at"
        )

    def get_serializer_class(self):
        return RunDetailSerializer if self.action in ("retrieve", "cancel", "create") else RunSerializer

    @extend_schema(
        request=RunStartSerializer,
        responses={
            201: RunStartedSerializer,
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="Refused (scope, target); nothing was queued."),
        },
    )
    def create(self, request):
        """Scan a target now (or one of its hosts): a run from each of its vantage points, queued for their
        workers. The response is the first run (the zone's home first); ``also_started`` lists the others."""
        incoming = RunStartSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        target = ScanTarget.objects.select_related("zone", "profile").filter(
            public_id=incoming.validated_data["target"]
        )
        target = target.first()
        if target is None:
            raise exceptions.ValidationError({"target": ["No such target."]})
        only = incoming.validated_data.get("address") or None
        try:
            with transaction.atomic():
                run, *others = services.start_runs(target, requested_by=request.user, only=only)
                audit.record(request.user, "target.scan", target, summary=f"Scan now of {only or 'every target'}.")
        except (TargetSpecError, ScopeError) as error:
            raise exceptions.ValidationError({"detail": [f"Not scanned: {error}"]}) from None
        data = RunStartedSerializer(run, context={"also_started": others}).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={200: RunDetailSerializer, 409: OpenApiResponse(description="The run had already finished.")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, id=None):
        """Stop a queued or running run: queued chunks are cancelled, running nmap processes stopped."""
        run = self.get_object()
        with transaction.atomic():
            cancelled = services.cancel_run(run)
            if cancelled:
                audit.record(request.user, "run.cancel", run)
        if not cancelled:
            return Response({"detail": "The run had already finished."}, status=status.HTTP_409_CONFLICT)
        run.refresh_from_db()
        return Response(RunDetailSerializer(run).data)


# --- imports ----------------------------------------------------------------------------------------

ImportRequestSerializer = inline_serializer(
    "ImportRequest",
    {
        "file": serializers.FileField(
            help_text="nmap XML (nmap -oX), or masscan's XML (-oX) or JSON (-oJ, -oD), read from the file."
        ),
        "zone": serializers.CharField(required=False, help_text=f"Zone name (default: {DEFAULT_ZONE})."),
    },
)


class ImportViewSet(RoleMixin, viewsets.GenericViewSet):
    """Upload a scan file (nmap XML, masscan XML or JSON): ingested like a scan. A bad file is refused
    and writes nothing; a masscan file concludes only what masscan heard (nothing is closed)."""

    parser_classes = [MultiPartParser, FormParser]
    serializer_class = RunDetailSerializer

    def get_queryset(self):
        return ScanRun.objects.none()

    @extend_schema(
        request={"multipart/form-data": ImportRequestSerializer},
        responses={
            201: RunDetailSerializer,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Not a scan file PortWatch reads; nothing was imported."
            ),
            413: OpenApiResponse(OpenApiTypes.OBJECT, description="Larger than IMPORT_MAX_BYTES."),
        },
    )
    def create(self, request):
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        limit = settings.IMPORT_MAX_BYTES
        if declared > limit + 64 * 1024:
            return Response(
                {"file": [f"Imports are limited to {limit / 1048576:.0f} MB (IMPORT_MAX_BYTES)."]},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        data = {"zone": request.data.get("zone") or DEFAULT_ZONE}
        form = ImportForm(data, request.FILES)
        form.fields["zone"].to_field_name = "name"
        if not form.is_valid():
            code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if form.has_error("file", "too_large") else 400
            return Response({field: list(errors) for field, errors in form.errors.items()}, status=code)
        upload = form.cleaned_data["file"]
        try:
            run = import_scan_file(
                upload,
                zone=form.cleaned_data["zone"],
                requested_by=request.user,
                name=upload.name,
                path=upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else None,
            )
        except NmapXmlError as error:
            audit.record(
                request.user,
                "import.refuse",
                object_type="scan file",
                object_repr=(upload.name or "")[:255],
                summary=str(error),
            )
            return Response({"file": [f"{error} Nothing was imported."]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(RunDetailSerializer(run).data, status=status.HTTP_201_CREATED)


# --- the scan scope ------------------------------------------------------------------------------------


class ScopeRuleSerializer(FormSerializer):
    """A network PortWatch may scan (allow) or must never touch (exclude); validated by the Scope page's form."""

    form_class = ScopeRuleForm

    id = serializers.IntegerField(read_only=True)
    network = serializers.CharField(
        max_length=64, help_text="An address or a network, e.g. 203.0.113.0/24; stored as the network it names."
    )
    action = serializers.ChoiceField(choices=ScopeAction.choices, help_text="Exclusions win over allows.")
    reason = serializers.CharField(max_length=200)
    locked = serializers.BooleanField(read_only=True, help_text="A built-in exclusion: it cannot be removed.")
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)

    def save_form(self):
        return scope_rules.add_scope_rule(self.form, self.context["request"].user)


class ScopeRuleFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=ScopeAction.choices)

    class Meta:
        model = ScopeRule
        fields = ["action", "locked"]


class ScopeRuleViewSet(
    RoleMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The scan scope: everyone reads it, admins add and remove rules (audited), as on the Scope page.

    An address is scanned only when an allow rule covers it and no exclude rule
    does. Built-in exclusions (link-local, cloud metadata) cannot be removed (403).
    """

    serializer_class = ScopeRuleSerializer
    filterset_class = ScopeRuleFilter
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return ScopeRule.objects.select_related("created_by")

    @extend_schema(responses={204: None, 403: OpenApiResponse(description="A built-in exclusion, or not an admin.")})
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, rule):
        try:
            scope_rules.remove_scope_rule(rule, self.request.user)
        except scope_rules.ScopeRuleLocked as error:
            raise exceptions.PermissionDenied(str(error)) from None


def register(router) -> None:
    router.register("changes", ChangeViewSet, basename="change")
    router.register("targets", TargetViewSet, basename="target")
    router.register("schedules", ScheduleViewSet, basename="schedule")
    router.register("profiles", ProfileViewSet, basename="profile")
    router.register("runs", RunViewSet, basename="run")
    router.register("imports", ImportViewSet, basename="import")
    router.register("scope", ScopeRuleViewSet, basename="scope-rule")
