"""Host reports in the API: ``/api/host-reports/`` (post one, list them) and ``/api/host-listeners/<host>/``.

A host posts its own report with a reporter's token (``manage.py
listener_reporter NAME``): a user in the ``host-reporter`` group may post
reports and nothing else (it has no role: every other endpoint and page
refuses it), so a cron job on a host holds no reviewer's rights. Reviewers
and admins may post too. The body is the report as the tool printed it
(any content type: text, JSON, UTF-16), or a multipart form with the file
in ``report``; ``host``, ``zone``, ``format`` and ``taken_at`` are query
parameters (or form fields). A bad report is a 400 naming the line; nothing
is written.
"""

from types import SimpleNamespace

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, parsers, serializers, status, viewsets
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from inventory.api import HostRefSerializer
from inventory.models import Host
from listeners import intake, reconcile, reports
from listeners.choices import ReportSource
from listeners.models import HostReport
from listeners.parsing import FORMATS, ReportError
from portwatch.api.base import RoleMixin
from portwatch.roles import Role, role_of

REPORTER_GROUP = "host-reporter"


def is_reporter(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.groups.filter(name=REPORTER_GROUP).exists())


class PostsReports(BasePermission):
    """Reading needs a viewer; posting a reviewer, or a reporter (who may do nothing else)."""

    message = "Posting a host report needs a reporter's token, or the reviewer role."

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            self.message = "This needs the viewer role."
            return role_of(request.user) >= Role.VIEWER
        return role_of(request.user) >= Role.REVIEWER or is_reporter(request.user)


class RawParser(parsers.BaseParser):
    """The body as it came: a report is parsed by ``listeners.parsing``, whatever its content type says."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream is not None else b""


class ReportFormatIsNotRendering(DefaultContentNegotiation):
    """``?format=`` names the report's format here, not the response's (DRF's URL_FORMAT_OVERRIDE): JSON it is."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)


class HostReportSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    host = HostRefSerializer(read_only=True)

    class Meta:
        model = HostReport
        fields = [
            "id",
            "host",
            "format",
            "taken_at",
            "received_at",
            "source",
            "host_name",
            "sockets",
            "skipped",
            "applied",
        ]


POST_PARAMETERS = [
    OpenApiParameter("host", str, required=True, description="The host's address, as the inventory has it."),
    OpenApiParameter("zone", str, description="The host's zone, when the address is in several."),
    OpenApiParameter("format", str, enum=sorted(FORMATS), description="Default: read from the report."),
    OpenApiParameter("taken_at", OpenApiTypes.DATETIME, description="When the host took it. Default: now."),
]


class HostReportViewSet(RoleMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Reports of hosts' listening sockets: post one (a reporter's token), list them (newest first)."""

    serializer_class = HostReportSerializer
    permission_classes = [PostsReports]
    parser_classes = [parsers.MultiPartParser, RawParser]
    content_negotiation_class = ReportFormatIsNotRendering

    def get_queryset(self):
        reports_ = HostReport.objects.select_related("host__zone").order_by("-taken_at", "-id")
        host = self.request.query_params.get("host")
        return reports_.filter(host__address=host) if host else reports_

    @extend_schema(parameters=[OpenApiParameter("host", str, description="Only this host's reports.")])
    def list(self, request, *args, **kwargs):
        host = request.query_params.get("host")
        if host:
            try:
                serializers.IPAddressField().run_validation(host)
            except serializers.ValidationError:
                raise exceptions.ValidationError({"host": [f"{host!r} is not an IP address."]}) from None
        return super().list(request, *args, **kwargs)

    @extend_schema(
        parameters=POST_PARAMETERS,
        request={"text/plain": OpenApiTypes.BINARY, "multipart/form-data": OpenApiTypes.OBJECT},
        responses={201: HostReportSerializer},
    )
    def create(self, request, *args, **kwargs):
        fields = request.data if isinstance(request.data, dict) or hasattr(request.data, "getlist") else {}
        params = {
            name: request.query_params.get(name) or fields.get(name) for name in ("host", "zone", "format", "taken_at")
        }
        data = request.data if isinstance(request.data, bytes) else None
        if data is None:
            upload = request.FILES.get("report")
            if upload is None:
                raise exceptions.ValidationError({"report": ["Send the report as the body, or as the file 'report'."]})
            data = upload.read()
        if not params["host"]:
            raise exceptions.ValidationError({"host": ["Name the host: ?host=<its address>."]})
        if params["format"] and params["format"] not in FORMATS:
            raise exceptions.ValidationError({"format": [f"One of {', '.join(sorted(FORMATS))}, or none to read it."]})
        taken_at = None
        if params["taken_at"]:
            try:
                taken_at = parse_datetime(params["taken_at"])
            except ValueError:  # well formed, impossible (month 13)
                taken_at = None
            if taken_at is None or taken_at.tzinfo is None:
                raise exceptions.ValidationError({"taken_at": ["A time with its zone, e.g. 2026-12-06T10:00:00Z."]})
        try:
            host = intake.find_host(params["host"], params["zone"])
        except intake.HostNotFound as error:
            raise exceptions.ValidationError({"host": [str(error)]}) from None
        try:
            parsed = intake.read(data, params["format"], taken_at=taken_at)
        except ReportError as error:
            raise exceptions.ValidationError({"report": [f"{error}. Nothing was imported."]}) from None
        imported = reports.take(host, parsed, source=ReportSource.API, user=request.user)
        body = HostReportSerializer(imported.report).data
        body["changes"] = imported.changes
        body["summary"] = imported.summary
        return Response(body, status=status.HTTP_201_CREATED)


class ListenerFindingSerializer(serializers.Serializer):
    protocol = serializers.CharField()
    port = serializers.IntegerField()
    addresses = serializers.SerializerMethodField(help_text='Where it listens ("*": every address, IPv4 and IPv6).')
    scope = serializers.CharField(allow_null=True, help_text="all, address or loopback; null: nothing listens.")
    process = serializers.SerializerMethodField(help_text="As the host reported it: untrusted text.")
    pid = serializers.SerializerMethodField()
    user = serializers.SerializerMethodField()
    open_from = serializers.ListField(child=serializers.CharField(), help_text="Vantage points that find it open.")
    probed = serializers.BooleanField()
    finding = serializers.CharField(allow_null=True)
    bind_rule = serializers.SerializerMethodField(
        help_text="The port rule saying where it may listen that a listener breaks (its id and listen_on), or null."
    )

    def get_bind_rule(self, found) -> dict | None:
        rule = found.bind_rule
        return None if rule is None else {"id": str(rule.public_id), "listen_on": rule.listen_on}

    def get_addresses(self, found) -> list[str]:
        return [listener.address for listener in found.listeners]

    def _first(self, found, name):
        return getattr(found.listeners[0], name) if found.listeners else None

    def get_process(self, found) -> str | None:
        return self._first(found, "process")

    def get_pid(self, found) -> int | None:
        return self._first(found, "pid")

    def get_user(self, found) -> str | None:
        return self._first(found, "user")


class HostListenersViewSet(RoleMixin, viewsets.ViewSet):
    """A host's report held against the scans: each port's listeners, where it is open from, the finding."""

    lookup_field = "public_id"

    @extend_schema(
        parameters=[
            OpenApiParameter("public_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The host's id.")
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def retrieve(self, request, public_id=None):
        host = get_object_or_404(Host.objects.select_related("zone", "seen_ports"), public_id=public_id)
        view = reconcile.for_host(host)
        return Response(
            {
                "host": HostRefSerializer(host).data,
                "report": HostReportSerializer(view.report).data if view.report else None,
                "fresh": view.fresh,
                "max_age_hours": int(view.max_age.total_seconds() // 3600),
                "counts": view.counts(),
                "ports": ListenerFindingSerializer(view.ports, many=True).data,
            }
        )


def register(router) -> None:
    router.register("host-reports", HostReportViewSet, basename="host-report")
    router.register("host-listeners", HostListenersViewSet, basename="host-listeners")
