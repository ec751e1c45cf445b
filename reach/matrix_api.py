"""The exposure matrix in the API: ``/api/exposure-matrix/`` (the cells) and ``/api/exposures/`` (one cell, listed).

The same filters as the page (``rows``, ``port``, ``protocol``, ``risk``,
``rule``: ``reach.forms.MatrixFilterForm``), the same counts
(``reach.matrix``) and lists (``reach.exposures``). A bad filter is a 400
naming it.
"""

from django.core.exceptions import BadRequest
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, viewsets
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from inventory.api import HostRefSerializer
from inventory.models import Tag, Zone
from portwatch.api.base import RoleMixin
from reach import exposures
from reach.forms import MatrixFilterForm
from reach.matrix import read_matrix
from reach.models import VantagePoint

FILTER_PARAMETERS = [
    OpenApiParameter("rows", str, enum=["zone", "tag"], description="Rows: zones (default) or tags."),
    OpenApiParameter("port", str, description="Ports, e.g. 22,3306 or 8000-8100."),
    OpenApiParameter("protocol", str, enum=["tcp", "udp"]),
    OpenApiParameter("risk", int, description="At least this severity in the risk table (1 low ... 4 critical)."),
    OpenApiParameter("rule", str, description="A segmentation rule's id: its ports, its scope, its violations."),
]


def _query(request):
    form = MatrixFilterForm(request.query_params)
    if not form.is_valid():
        raise exceptions.ValidationError(form.errors)
    return form.query()


class CellSerializer(serializers.Serializer):
    vantage = serializers.CharField(source="vantage.name")
    exposed = serializers.IntegerField(help_text="Open ports of the row's hosts this vantage point reaches.")
    violated = serializers.IntegerField(help_text="Segmentation violations among them.")


class RowSerializer(serializers.Serializer):
    name = serializers.CharField(source="item.name", help_text="The zone's or the tag's name.")
    cells = CellSerializer(many=True)


class ExposureMatrixViewSet(RoleMixin, viewsets.ViewSet):
    """Zones (or tags) by vantage point: the open ports each reaches and the segmentation violations."""

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses=inline_serializer(
            "ExposureMatrix",
            {
                "rows": serializers.ChoiceField(choices=["zone", "tag"]),
                "filtered": serializers.BooleanField(help_text="Counted now for the filters (else kept counts)."),
                "vantage_points": serializers.ListField(child=serializers.CharField()),
                "results": RowSerializer(many=True),
            },
        ),
    )
    def list(self, request):
        matrix = read_matrix(_query(request))
        return Response(
            {
                "rows": matrix.query.rows,
                "filtered": matrix.query.filtered,
                "vantage_points": [vantage.name for vantage in matrix.vantages],
                "results": RowSerializer(matrix.rows, many=True).data,
            }
        )


class ExposureSerializer(serializers.Serializer):
    """An open port a vantage point reaches (``name`` is what the host announced: untrusted text)."""

    host = HostRefSerializer()
    protocol = serializers.CharField()
    port = serializers.IntegerField()
    name = serializers.CharField()
    stale = serializers.BooleanField(help_text="The host stopped answering: the last state seen, not closed.")
    last_seen = serializers.DateTimeField(allow_null=True)
    violates = serializers.UUIDField(source="rule.public_id", allow_null=True, default=None)
    violated_since = serializers.DateTimeField(source="since", allow_null=True)


class ExposureViewSet(RoleMixin, viewsets.ViewSet):
    """One cell of the matrix, listed: what ``vantage`` reaches in ``zone`` or ``tag`` (or everywhere),
    by host, a page at a time (follow ``next``); ``violations=1`` lists only the violations."""

    page_size = exposures.PAGE

    @extend_schema(
        parameters=[
            OpenApiParameter("vantage", str, required=True, description="The vantage point's name."),
            OpenApiParameter("zone", str, description="A zone's name."),
            OpenApiParameter("tag", str, description="A tag's name."),
            OpenApiParameter("violations", int, enum=[0, 1], description="1: only the violations."),
            OpenApiParameter("cursor", str, description="Where the page starts (from `next`)."),
            *FILTER_PARAMETERS[1:],
        ],
        responses=inline_serializer(
            "Exposures",
            {"next": serializers.URLField(allow_null=True), "results": ExposureSerializer(many=True)},
        ),
    )
    def list(self, request):
        params = request.query_params
        if not params.get("vantage"):
            raise exceptions.ValidationError({"vantage": ["Name the vantage point: ?vantage=<name>."]})
        vantage = get_object_or_404(VantagePoint, name=params["vantage"])
        zone = get_object_or_404(Zone, name=params["zone"]) if params.get("zone") else None
        tag = get_object_or_404(Tag, name=params["tag"]) if params.get("tag") else None
        try:
            after = exposures.Cursor.parse(params.get("cursor"))
        except BadRequest as error:  # its message is written for people
            raise exceptions.ValidationError({"cursor": [str(error)]}) from None
        page = exposures.page(
            vantage,
            zone=zone,
            tag=tag,
            query=_query(request),
            only_violations=params.get("violations") == "1",
            after=after,
        )
        following = None
        if page.next is not None:
            following = replace_query_param(request.build_absolute_uri(), "cursor", str(page.next))
        return Response({"next": following, "results": ExposureSerializer(page.rows, many=True).data})


def register(router) -> None:
    router.register("exposure-matrix", ExposureMatrixViewSet, basename="exposure-matrix")
    router.register("exposures", ExposureViewSet, basename="exposure")
