"""One JSON error shape for the API: {"detail": "...", "errors": {...}} with a 4xx status."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import JsonResponse
from django.views import csrf as csrf_views
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from xrayweb.errors import ApplicationError


def _first_message(data) -> str:
    if isinstance(data, dict):
        for key, value in data.items():
            message = _first_message(value)
            if message:
                return message if key in ("detail", "non_field_errors") else f"{key}: {message}"
    if isinstance(data, list) and data:
        return _first_message(data[0])
    return str(data) if data else ""


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message, **exc.extra}, status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError) or "detail" not in response.data:
        response.data = {"detail": _first_message(response.data), "errors": response.data}
    if response.status_code == status.HTTP_403_FORBIDDEN and not response.data.get("detail"):
        response.data["detail"] = "You do not have permission to do this."
    return response


def _json_or_page(request, status_code: int, detail: str, page_handler, **kwargs):
    """Under /api/ (and /media/, which API clients fetch), errors that never reach a DRF view
    (an unmatched URL, a CSRF failure) still answer in the API's JSON shape."""
    if request.path.startswith(("/api/", "/media/")):
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
