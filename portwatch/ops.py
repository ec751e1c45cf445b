"""Endpoints for operators: Prometheus metrics and a health check.

Both require login like every other endpoint: a browser session, or an API
token (``Authorization: Token <key>``, or ``Bearer <key>``) of a user with at
least the viewer role, which is what a Prometheus scrape config or a load
balancer's probe sends.
"""

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.views import APIView

from portwatch import health, metrics
from portwatch.roles import Role


# Authentication and roles are the REST API's (settings.REST_FRAMEWORK: token or
# session, then portwatch.api.auth.RolePermission), after the login middleware.
@method_decorator(login_not_required, name="dispatch")
class _OpsView(APIView):
    read_role = Role.VIEWER
    # Not part of the REST API's schema: they are not JSON resources.
    schema = None

    def handle_exception(self, exc):
        if isinstance(exc, DatabaseError):
            # Without the database nobody can be authenticated; say only that.
            return JsonResponse(
                {"status": health.FAILING, "detail": "The database is not reachable."},
                status=503,
            )
        return super().handle_exception(exc)


class MetricsView(_OpsView):
    def get(self, request):
        return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)


class HealthView(_OpsView):
    def get(self, request):
        report = health.run_checks()
        return JsonResponse(report, status=200 if report["status"] == health.OK else 503)
