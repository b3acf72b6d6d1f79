"""The one web-side error type, and the site's error responses: Django's error pages, or
under /api/ and /media/ the API's JSON shape (xrayweb.api.errors for errors in DRF views)."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import JsonResponse
from django.views import csrf as csrf_views
from django.views import defaults


class ApplicationError(Exception):
    """The one web-side error type: a message fit to show the user, and an HTTP status."""

    def __init__(self, message: str, *, status: int = 400, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}


def _json_or_page(request, status_code: int, detail: str, page_handler, **kwargs):
    """Under /api/ (and /media/, which API clients fetch), errors that never reach a DRF view
    (an unmatched URL, a CSRF failure) still answer in the API's JSON shape."""
    if request.path.startswith(("/api/", "/media/", "/dicomweb/")):
        return JsonResponse({"detail": detail}, status=status_code)
    return page_handler(request, **kwargs)


def page_not_found(request, exception=None):
    return _json_or_page(request, 404, "Not found.", defaults.page_not_found, exception=exception)


def server_error(request):
    return _json_or_page(request, 500, "Server error.", defaults.server_error)


def bad_request(request, exception=None):
    detail = "Bad request."
    if isinstance(exception, TooManyFilesSent):
        detail = f"Too many files in one request (at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES})."
    elif isinstance(exception, RequestDataTooBig):
        detail = "The request is too large."
    return _json_or_page(request, 400, detail, defaults.bad_request, exception=exception)


def permission_denied(request, exception=None):
    return _json_or_page(
        request, 403, "Forbidden.", defaults.permission_denied, exception=exception
    )


def csrf_failure(request, reason=""):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "CSRF check failed: a session POST needs the CSRF token."}, status=403
        )
    return csrf_views.csrf_failure(request, reason=reason)
