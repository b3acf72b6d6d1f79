"""Downloads: a study's DICOM (de-identified original, heatmap overlay) and the CSV of every
prediction with its readings. Each is audited."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from xrayweb.api.permissions import CanExportDicom, CanExportPredictions, CanReview
from xrayweb.api.renderers import CSV_RENDERERS, DICOM_RENDERERS, FileDownloadMixin
from xrayweb.audit.addresses import client_ip
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.downloads import csv_download
from xrayweb.inference.selectors import prediction_overlay_dicom
from xrayweb.review.export import COLUMNS, export_filename, predictions_export
from xrayweb.studies.models import Study
from xrayweb.studies.services.exports import study_confirm_no_burned_in_text, study_export_dicom


def _dicom_response(data: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/dicom")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class StudyDicomExportApi(FileDownloadMixin, APIView):
    """GET: the original DICOM, de-identified (PS3.15 Annex E Basic Profile)."""

    permission_classes = [IsAuthenticated, CanExportDicom]
    renderer_classes = DICOM_RENDERERS

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        study = get_object_or_404(Study, pk=pk)
        data = study_export_dicom(study=study)
        audit_record(
            actor=request.user,
            action=AuditEvent.Action.EXPORT_DICOM,
            study=study,
            detail={"kind": "deidentified"},
            ip=client_ip(request),
        )
        return _dicom_response(data, f"study-{study.pk}-deidentified.dcm")


class StudyOverlayDicomApi(FileDownloadMixin, APIView):
    """GET: the heatmap overlay as a Secondary Capture in the source study, for a PACS. It
    carries the patient's identity, like the original."""

    permission_classes = [IsAuthenticated, CanExportDicom]
    renderer_classes = DICOM_RENDERERS

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        study = get_object_or_404(Study.objects.select_related("current_prediction"), pk=pk)
        data, prediction = prediction_overlay_dicom(study=study)
        audit_record(
            actor=request.user,
            action=AuditEvent.Action.EXPORT_DICOM,
            study=study,
            detail={"kind": "secondary_capture", "prediction": prediction.pk},
            ip=client_ip(request),
        )
        return _dicom_response(data, f"study-{study.pk}-overlay.dcm")


class PredictionsExportApi(FileDownloadMixin, APIView):
    """GET (radiologists, admins): every prediction with its review history as CSV. A
    radiologist's export hides a first read awaiting someone else's second read, as the
    study's readings do; an admin's shows all. Pseudonymised (keyed patient and accession
    pseudonyms, comments withheld) unless an admin asks for ``?identified=1``; audited with
    which."""

    permission_classes = [IsAuthenticated, CanExportPredictions]
    renderer_classes = CSV_RENDERERS

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "identified",
                OpenApiTypes.BOOL,
                description="admins only: real patient IDs, accessions and comments",
            )
        ],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        rows = predictions_export(  # 403 for identifiers asked by a non-admin
            user=request.user, query=request.query_params, ip=client_ip(request)
        )
        return csv_download(rows, header=COLUMNS, filename=export_filename())


class StudyBurnedInCheckApi(APIView):
    """POST (radiologists): "I looked at this film and no text is burned into its pixels".
    Needed before a de-identified export when the header does not say BurnedInAnnotation
    "NO"; audited."""

    permission_classes = [IsAuthenticated, CanReview]

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, pk: int):
        study = study_confirm_no_burned_in_text(
            study=get_object_or_404(Study, pk=pk), user=request.user, ip=client_ip(request)
        )
        return Response(
            {
                "study": study.pk,
                "burned_in_checked_by": request.user.get_username(),
                "burned_in_checked_at": study.burned_in_checked_at,
            }
        )
