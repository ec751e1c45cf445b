"""The exposure matrix's pages: the matrix (zones or tags by vantage point) and a cell's list."""

from urllib.parse import urlencode

from django.shortcuts import get_object_or_404, render
from django.views import View

from inventory.models import Tag, Zone
from portwatch.roles import RoleRequiredMixin
from reach import exposures
from reach.forms import MatrixFilterForm
from reach.matrix import ROWS_TAG, ROWS_ZONE, Query, read_matrix
from reach.models import VantagePoint

# The filters a cell's link carries over from the matrix (and its pages from each other).
FILTERS = ("port", "protocol", "risk", "rule")


def carried(request) -> str:
    """The request's filters as a query string (without rows, cell or cursor)."""
    return urlencode([(key, request.GET[key]) for key in FILTERS if request.GET.get(key)])


class ExposureMatrixView(RoleRequiredMixin, View):
    """Zones (or tags) by vantage point: in each cell the open ports reached from there and the violations."""

    template_name = "reach/exposure_matrix.html"

    def get(self, request):
        form = MatrixFilterForm(request.GET)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form, "matrix": None}, status=400)
        context = {"form": form, "matrix": read_matrix(form.query()), "filters": carried(request)}
        return render(request, self.template_name, context)


class ExposureCellView(RoleRequiredMixin, View):
    """One cell, listed: what a vantage point reaches in a zone or a tag (``?violations=1``: its violations)."""

    template_name = "reach/exposure_cell.html"

    def get(self, request, name):
        vantage = get_object_or_404(VantagePoint.objects.select_related("home_of"), name=name)
        form = MatrixFilterForm(request.GET)
        zone = tag = None
        if request.GET.get("zone"):
            zone = get_object_or_404(Zone, name=request.GET["zone"])
        if request.GET.get("tag"):
            tag = get_object_or_404(Tag, name=request.GET["tag"])
        only_violations = request.GET.get("violations") == "1"
        context = {
            "vantage": vantage,
            "zone": zone,
            "tag": tag,
            "form": form,
            "only_violations": only_violations,
            "filters": carried(request),
        }
        if not form.is_valid():
            return render(request, self.template_name, {**context, "page": None}, status=400)
        query: Query = form.query()
        page = exposures.page(
            vantage,
            zone=zone,
            tag=tag,
            query=query,
            only_violations=only_violations,
            after=exposures.Cursor.parse(request.GET.get("cursor")),
        )
        return render(request, self.template_name, {**context, "page": page, "rows": ROWS_TAG if tag else ROWS_ZONE})
