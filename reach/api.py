"""Vantage points in the API: where scans come from, whether anyone scans from there, and what each one sees.

Vantage points are validated by their page's form and deleted through
``reach.services`` (audited, refused with 409 when one is needed: a zone's
home, one a target scans from, one that has scanned). ``/api/port-views/``
is every other vantage point's view of the ports it reached; the zone's home
sees the inventory, ``/api/services/``.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets

from inventory.api import HostRefSerializer
from portwatch.api.base import Conflict, FormSerializer, RoleMixin, save_audited
from reach import services
from reach.choices import VantageStatus
from reach.filters import ApiPortViewFilter
from reach.forms import VantagePointForm
from reach.liveness import Board
from reach.models import PortView, VantagePoint

# --- vantage points -------------------------------------------------------------------


class VantagePointSerializer(FormSerializer):
    """A place scans come from: its workers (``run_worker --vantage NAME``) consume its queue."""

    form_class = VantagePointForm

    name = serializers.SlugField(
        max_length=63,
        help_text="Letters, digits, dashes and underscores. A zone's home keeps its name (its zone owns it).",
    )
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    home_of = serializers.CharField(
        source="home_of.name",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The zone whose home it is (its view is that zone's inventory), or null.",
    )
    queue = serializers.CharField(read_only=True, help_text="The broker queue its workers consume.")
    remote = serializers.BooleanField(
        read_only=True,
        help_text="Its scanners hold no database credentials (run_scanner) and sign with its key "
        "(manage.py scanner_key makes one remote; the key is never shown here).",
    )
    status = serializers.SerializerMethodField(
        help_text="listening: at least one live worker consumes its queue; silent: none does, "
        "and its view is what it saw last (stale, not closed)."
    )
    silent_since = serializers.SerializerMethodField(
        help_text="When a silent vantage point's queue was last consumed (null: listening, or no worker "
        "PortWatch remembers ever consumed it)."
    )
    workers = serializers.SerializerMethodField(help_text="The live workers consuming its queue.")
    created_at = serializers.DateTimeField(read_only=True)

    def _liveness(self, vantage):
        # One read of the heartbeats per response, shared by a list's items (their context is the list's).
        board = self.context.get("liveness_board")
        if board is None:
            board = self.context["liveness_board"] = Board.read()
        return board.of(vantage)

    @extend_schema_field(serializers.ChoiceField(choices=VantageStatus.choices))
    def get_status(self, vantage) -> str:
        return self._liveness(vantage).status

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_silent_since(self, vantage):
        since = self._liveness(vantage).silent_since
        return serializers.DateTimeField().to_representation(since) if since else None

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_workers(self, vantage) -> list[str]:
        return self._liveness(vantage).worker_names

    def save_form(self):
        return save_audited(self.context["request"].user, self.form, "vantage")


class VantagePointViewSet(RoleMixin, viewsets.ModelViewSet):
    """Vantage points: everyone reads them, admins create, change and delete them (audited), as on their pages."""

    serializer_class = VantagePointSerializer
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def get_queryset(self):
        return VantagePoint.objects.select_related("home_of").order_by("name")

    @extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Still needed: a zone's home, scanned from by a target, or it has scanned "
                "(its runs name it). Nothing was deleted.",
            ),
        }
    )
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, vantage):
        try:
            services.delete_vantage(vantage, self.request.user)
        except services.VantageInUse as error:
            raise Conflict(str(error)) from None


# --- port views --------------------------------------------------------------------------


class PortViewSerializer(serializers.ModelSerializer):
    """One port as one vantage point sees it. ``name`` is what the scanned host announced: untrusted text."""

    host = HostRefSerializer(read_only=True)
    vantage = serializers.CharField(source="vantage.name", read_only=True)

    class Meta:
        model = PortView
        fields = ["host", "vantage", "protocol", "port", "state", "name", "stale", "first_seen", "last_seen"]
        read_only_fields = fields


class PortViewViewSet(RoleMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """From where ports are reachable: each vantage point's view (other than a zone's home, whose view is
    ``/api/services/``), open ports unless ``state`` says otherwise; ``?host=`` is one host's, ``?vantage=``
    one vantage point's. ``stale``: the host stopped answering that vantage point (the last state seen)."""

    serializer_class = PortViewSerializer
    filterset_class = ApiPortViewFilter

    def get_queryset(self):
        # In the order of the rows' unique index: a host's views are one range of it.
        return PortView.objects.select_related("host__zone", "vantage").order_by(
            "host_id", "protocol", "port", "vantage_id"
        )


def register(router) -> None:
    router.register("vantage-points", VantagePointViewSet, basename="vantage-point")
    router.register("port-views", PortViewViewSet, basename="port-view")
