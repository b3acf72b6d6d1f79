from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListCreateAPIView, RetrieveAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from xrayweb.api.permissions import CanExportDicom, CanReview, CanUpload
from xrayweb.api.serializers import (
    ReviewCreateSerializer,
    ReviewSerializer,
    StudyCreateSerializer,
    StudySerializer,
)
from xrayweb.errors import ApplicationError
from xrayweb.review.filters import WorklistFilter, unreviewed_first
from xrayweb.review.models import AuditEvent
from xrayweb.review.selectors import study_with_details
from xrayweb.review.services import audit_record, review_submit
from xrayweb.studies.models import Study
from xrayweb.studies.services import study_create, study_export_dicom, study_overlay_dicom


class StudyListCreateApi(ListCreateAPIView):
    permission_classes = [IsAuthenticated, CanUpload]
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = StudySerializer

    def get_queryset(self):
        # The worklist's filters, sorts and search work here too (?reviewed=no&sort=uncertain).
        filters = WorklistFilter(
            self.request.query_params,
            queryset=unreviewed_first(study_with_details()),
            user=self.request.user,
        )
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        qs = filters.qs
        ids = self.request.query_params.get("ids")
        if ids:
            try:
                qs = qs.filter(pk__in=[int(i) for i in ids.split(",") if i])
            except ValueError as exc:
                raise ValidationError({"ids": "ids must be comma-separated integers."}) from exc
        return qs

    def create(self, request, *args, **kwargs):
        form = StudyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["image"]
        study = study_create(
            user=request.user,
            patient_id=form.validated_data["patient_id"],
            accession=form.validated_data["accession"],
            data=upload.read(),
            filename=upload.name,
            site=form.validated_data["site"],
            view=form.validated_data["view"],
            ip=request.META.get("REMOTE_ADDR"),
        )
        return Response({"id": study.pk, "status": study.status}, status=status.HTTP_201_CREATED)


class StudyDetailApi(RetrieveAPIView):
    serializer_class = StudySerializer

    def get_queryset(self):
        return study_with_details()

    def get_object(self):
        study = super().get_object()
        audit_record(
            actor=self.request.user,
            action=AuditEvent.Action.STUDY_VIEW,
            study=study,
            ip=self.request.META.get("REMOTE_ADDR"),
        )
        return study


def _dicom_response(data: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/dicom")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class StudyDicomExportApi(APIView):
    """GET: the original DICOM, de-identified (PS3.15 Annex E Basic Profile)."""

    permission_classes = [IsAuthenticated, CanExportDicom]

    def get(self, request, pk: int):
        study = get_object_or_404(Study, pk=pk)
        data = study_export_dicom(study=study)
        audit_record(
            actor=request.user,
            action=AuditEvent.Action.EXPORT_DICOM,
            study=study,
            detail={"kind": "deidentified"},
            ip=request.META.get("REMOTE_ADDR"),
        )
        return _dicom_response(data, f"study-{study.pk}-deidentified.dcm")


class StudyOverlayDicomApi(APIView):
    """GET: the heatmap overlay as a Secondary Capture in the source study, for a PACS. It
    carries the patient's identity, like the original."""

    permission_classes = [IsAuthenticated, CanExportDicom]

    def get(self, request, pk: int):
        study = get_object_or_404(Study.objects.select_related("current_prediction"), pk=pk)
        prediction = study.current_prediction
        if prediction is None or not prediction.heatmaps.get("fused"):
            raise ApplicationError(f"Study {pk} has no heatmap yet.", status=404)
        data = study_overlay_dicom(
            study=study,
            heatmap_path=prediction.heatmaps["fused"],
            key=f"prediction-{prediction.pk}",
        )
        audit_record(
            actor=request.user,
            action=AuditEvent.Action.EXPORT_DICOM,
            study=study,
            detail={"kind": "secondary_capture", "prediction": prediction.pk},
            ip=request.META.get("REMOTE_ADDR"),
        )
        return _dicom_response(data, f"study-{study.pk}-overlay.dcm")


class ReviewCreateApi(APIView):
    permission_classes = [IsAuthenticated, CanReview]

    def post(self, request, pk: int):
        study = get_object_or_404(study_with_details(), pk=pk)
        form = ReviewCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        review = review_submit(study=study, reviewer=request.user, **form.validated_data)
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)
