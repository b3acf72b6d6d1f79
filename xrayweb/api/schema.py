"""The OpenAPI schema (drf-spectacular): every operation also documents the error statuses it
can answer, each with the API's one error shape."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    errors = serializers.DictField(
        required=False, help_text="Field-by-field validation messages (400 only)."
    )


ERRORS = {
    400: "The request is invalid: see `detail` and `errors`.",
    401: "Not logged in: send `Authorization: Token <key>` or a session cookie.",
    403: "Logged in, but this role may not do this.",
    404: "No such object.",
    405: "This method is not allowed here.",
    406: "The Accept header asks for a format this operation does not produce.",
    409: "Conflicts with the stored state (a duplicate upload, a stale reading).",
    413: "The upload is too large.",
    415: "The media type is not supported.",
    429: "Too many failed logins: locked for a while.",
}


class ApiSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        bodies = super()._get_response_bodies(direction)
        for code, description in ERRORS.items():
            bodies.setdefault(
                str(code),
                self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=description),
                    str(code),
                    media_types=["application/json"],
                    direction=direction,
                ),
            )
        return bodies
