"""One JSON error shape for the API: {"detail": "...", "errors": {...}} with a 4xx status.
(Errors met outside any DRF view answer from xrayweb.errors, in the same shape under /api/.)"""

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
