"""Refuse query parameters that hold a NUL byte, before any view reads them.

PostgreSQL text cannot hold NUL (0x00): a filter, a lookup by name or a form's
choice with one fails in the database as a 500, wherever a view forgot to
validate. No query parameter of PortWatch means anything with NUL in it, so
the request gets a clear 400 here, the one place every view goes through.
Posted forms are left to the forms: Django's refuse NUL in every field, with
a message that names the field (DRF's fields do the same for JSON), and
scan and host reports are parsed by readers that refuse what they cannot read.
"""

from django.core.exceptions import BadRequest
from django.http import JsonResponse

from portwatch.views import bad_request

MESSAGE = "A parameter holds a NUL byte (0x00): no value here may contain one."


def _holds_nul(params) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in params.lists())


class RefuseNulBytesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # After LoginRequiredMiddleware's process_view: a visitor who is not
        # logged in is sent to the login page, as for every other request.
        if not _holds_nul(request.GET) and not any("\x00" in str(value) for value in view_kwargs.values()):
            return None
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": MESSAGE}, status=400)
        return bad_request(request, BadRequest(MESSAGE))  # the product's 400 page, saying why
