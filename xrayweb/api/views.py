from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, ListCreateAPIView, RetrieveAPIView
from rest_framework.parsers import FormParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from xrayweb.api.parsers import StrictMultiPartParser
from xrayweb.api.permissions import (
    CanAudit,
    CanExportDicom,
    CanManageModels,
    CanReviewOrRead,
    CanUpload,
)
from xrayweb.api.renderers import CSV_RENDERERS, DICOM_RENDERERS, FileDownloadMixin
from xrayweb.api.serializers import (
    ModelVersionSerializer,
    PredictionSerializer,
    ReviewCreateSerializer,
    ReviewSerializer,
    StudyCreateSerializer,
    StudySerializer,
    TokenSerializer,
)
from xrayweb.errors import ApplicationError
from xrayweb.inference.models import ModelVersion
from xrayweb.inference.services import model_version_activate
from xrayweb.review.export import export_response
from xrayweb.review.filters import WorklistFilter, unreviewed_first
from xrayweb.review.models import AuditEvent
from xrayweb.review.selectors import study_with_details
from xrayweb.review.services import audit_record, review_submit, reviews_visible
from xrayweb.studies.images import upload_size_check
from xrayweb.studies.models import Study
from xrayweb.studies.services import study_create, study_export_dicom, study_overlay_dicom


class StudyListCreateApi(ListCreateAPIView):
    permission_classes = [IsAuthenticated, CanUpload]
    parser_classes = [StrictMultiPartParser, FormParser]
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
        upload_size_check(size=upload.size, name=upload.name)  # before reading it into memory
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
            ip=request.META.get("REMOTE_ADDR"),
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


class StudyReviewsApi(APIView):
    """GET: the readings of this study the caller may see (a pending second read hides the
    first from other readers). POST (radiologists): add a reading."""

    permission_classes = [IsAuthenticated, CanReviewOrRead]

    @extend_schema(responses=ReviewSerializer(many=True))
    def get(self, request, pk: int):
        study = get_object_or_404(study_with_details(), pk=pk)
        reviews = reviews_visible(study=study, user=request.user)
        return Response(ReviewSerializer(reviews, many=True).data)

    @extend_schema(request=ReviewCreateSerializer, responses={201: ReviewSerializer})
    def post(self, request, pk: int):
        study = get_object_or_404(study_with_details(), pk=pk)
        form = ReviewCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        review = review_submit(study=study, reviewer=request.user, **form.validated_data)
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)


class StudyPredictionsApi(ListAPIView):
    """GET: every prediction made for this study, newest first (one per model version)."""

    serializer_class = PredictionSerializer
    pagination_class = None

    def get_queryset(self):
        study = get_object_or_404(Study, pk=self.kwargs["pk"])
        return study.predictions.select_related("model_version")


class ModelVersionListApi(ListAPIView):
    """GET (admins): every registered model version, newest first."""

    permission_classes = [IsAuthenticated, CanManageModels]
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.all()


class ModelVersionActivateApi(APIView):
    """POST (admins): make this version the one that predicts new studies. Audited."""

    permission_classes = [IsAuthenticated, CanManageModels]

    @extend_schema(request=None, responses=ModelVersionSerializer)
    def post(self, request, pk: int):
        version = model_version_activate(version=get_object_or_404(ModelVersion, pk=pk))
        audit_record(
            actor=request.user,
            action=AuditEvent.Action.MODEL_ACTIVATE,
            detail={"model_version": version.name},
            ip=request.META.get("REMOTE_ADDR"),
        )
        return Response(ModelVersionSerializer(version).data)


class AuditExportApi(FileDownloadMixin, APIView):
    """GET (radiologists, admins): every prediction with its review history as CSV."""

    permission_classes = [IsAuthenticated, CanAudit]
    renderer_classes = CSV_RENDERERS

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        return export_response(user=request.user, ip=request.META.get("REMOTE_ADDR"))


class TokenApi(APIView):
    """POST username and password: the user's API token. DELETE (with that token, or a
    session): revoke it; a new POST issues a new one."""

    def get_permissions(self):
        return [] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(request=AuthTokenSerializer, responses=TokenSerializer, auth=[])
    def post(self, request):
        form = AuthTokenSerializer(data=request.data, context={"request": request})
        valid = form.is_valid()
        if getattr(request, "axes_locked_out", False):  # django-axes, after repeated failures
            raise ApplicationError(
                "Too many failed logins for this account from this address; try again later.",
                status=429,
            )
        if not valid:
            raise ValidationError(form.errors)
        token, _ = Token.objects.get_or_create(user=form.validated_data["user"])
        return Response({"token": token.key})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
