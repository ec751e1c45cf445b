"""``/api/``: the router's endpoints, the OpenAPI schema and the docs page."""

import base64
import hashlib
import re
from functools import cache

from django.contrib.auth.decorators import login_not_required, login_required
from django.template.loader import get_template
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from alerts.api import register as register_alerts
from certs.api import register as register_certs
from inventory.api import register as register_inventory
from listeners.api import register as register_listeners
from portwatch.account import TokenAdminViewSet
from portwatch.middleware import CONTENT_SECURITY_POLICY
from reach.api import register as register_reach
from reach.matrix_api import register as register_matrix
from reach.segmentation_api import register as register_segmentation
from scans.api import register as register_scans

app_name = "api"


@cache
def docs_csp() -> str:
    """The site's policy, plus the hash of the docs page's one inline <style>
    (drf-spectacular's box-sizing rule), read from the template itself so an
    upgrade cannot break it. No inline script runs: the page's init script is
    a separate response of the same view (SpectacularSwaggerSplitView)."""
    source = get_template(DocsView.template_name).template.source
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()}'"
        for style in re.findall(r"<style>(.*?)</style>", source, re.DOTALL)
    ]
    return CONTENT_SECURITY_POLICY.replace("style-src 'self'", " ".join(["style-src 'self'", *hashes]))


class Router(DefaultRouter):
    # One URL per endpoint: no ``.json`` twins.
    include_format_suffixes = False


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from this site's static files (drf-spectacular-sidecar: no CDN)."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response.headers["Content-Security-Policy"] = docs_csp()
        return response


def _authenticated_by_drf(patterns: list) -> list:
    """API views authenticate in DRF (a token or a session) and answer 401/403
    themselves, instead of LoginRequiredMiddleware's redirect to the login page
    (a token request is anonymous when the middleware looks at it). DRF marks
    its views so already; this says it where the URLs are, whatever DRF does."""
    for pattern in patterns:
        login_not_required(pattern.callback)
    return patterns


router = Router()
register_inventory(router)
register_scans(router)
register_alerts(router)
register_reach(router)
register_segmentation(router)
register_matrix(router)
register_listeners(router)
register_certs(router)
router.register("tokens", TokenAdminViewSet, basename="token")

urlpatterns = [
    *_authenticated_by_drf([*router.urls, path("schema/", SpectacularAPIView.as_view(), name="schema")]),
    # The docs page sends an anonymous browser to the login page (a person opens
    # it); then DRF checks the role, as for the schema it shows.
    path("docs/", login_required(DocsView.as_view(url_name="api:schema")), name="docs"),
]
