"""DICOMweb: STOW-RS, so a PACS or a modality's gateway can send films over HTTP."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from xrayweb.api.parsers import MultipartRelatedParser
from xrayweb.api.permissions import CanUpload
from xrayweb.api.renderers import DicomJsonRenderer
from xrayweb.audit.addresses import client_ip
from xrayweb.dicomnet.receiving import stow_store
from xrayweb.dicomnet.stow import stow_response
from xrayweb.errors import ApplicationError

STOW_DESCRIPTION = (
    "Store DICOM instances (PS3.18 STOW-RS): a `multipart/related; "
    'type="application/dicom"` body with a Content-Length (a chunked body is refused with 411), '
    "one film per part. Each part goes through the upload path. The response lists the stored "
    "instances (ReferencedSOPSequence, a duplicate with warning B000) and the refused ones "
    "(FailedSOPSequence with a FailureReason); 200 when all were stored, 202 when some were, "
    "409 when none were."
)


class StowApi(APIView):
    permission_classes = [IsAuthenticated, CanUpload]
    parser_classes = [MultipartRelatedParser]
    renderer_classes = [DicomJsonRenderer, JSONRenderer]

    def handle_exception(self, exc):
        # Errors keep the API's one JSON shape and type, whatever the client accepts.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(
        operation_id="dicomweb_stow",
        description=STOW_DESCRIPTION,
        request={"multipart/related": OpenApiTypes.BINARY},
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="all instances stored"),
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="some instances stored"),
            409: OpenApiResponse(OpenApiTypes.OBJECT, description="no instance stored"),
            411: OpenApiResponse(description="no Content-Length (a chunked body)"),
        },
    )
    def post(self, request):
        # Under WSGI (gunicorn, runserver) a chunked body reads as empty: refuse it rather
        # than answer "nothing stored" to a sender that sent a film.
        length = request.META.get("CONTENT_LENGTH", "")
        if not length or request.META.get("HTTP_TRANSFER_ENCODING"):
            raise ApplicationError(
                "Send the body with a Content-Length: a chunked body cannot be read here.",
                status=411,
            )
        if not length.isdigit() or int(length) > settings.DICOMWEB_MAX_BYTES:
            raise ApplicationError(
                f"The request is larger than {settings.DICOMWEB_MAX_BYTES} bytes.", status=413
            )
        # Checked here too: DRF answers an empty body of any type with empty data.
        if not request.content_type.lower().startswith("multipart/related"):
            raise ApplicationError(
                'STOW-RS takes multipart/related; type="application/dicom" bodies.', status=415
            )
        parts = request.data
        if not parts:
            raise ApplicationError("The request has no DICOM instances.")
        outcomes = stow_store(parts=parts, user=request.user, ip=client_ip(request))
        status, dataset = stow_response(
            outcomes=outcomes,
            study_url=lambda pk: request.build_absolute_uri(reverse("study-detail", args=[pk])),
        )
        return Response(dataset, status=status)
