"""The studies: list (with the worklist's filters) and upload, one study, its predictions."""

from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, ListCreateAPIView, RetrieveAPIView
from rest_framework.parsers import FormParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from xrayweb.api.parsers import StrictMultiPartParser
from xrayweb.api.permissions import CanUpload
from xrayweb.api.serializers import PredictionSerializer, StudyCreateSerializer, StudySerializer
from xrayweb.audit.addresses import client_ip
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.review.filters import WorklistFilter, unreviewed_first
from xrayweb.review.selectors import study_with_details
from xrayweb.studies.images import upload_size_check
from xrayweb.studies.selectors import studies_visible
from xrayweb.studies.services.ingest import study_create
from xrayweb.studies.services.reads import study_list_read_record


class StudyListCreateApi(ListCreateAPIView):
    permission_classes = [IsAuthenticated, CanUpload]
    parser_classes = [StrictMultiPartParser, FormParser]
    serializer_class = StudySerializer

    def get_queryset(self):
        # The worklist's filters, sorts and search work here too (?reviewed=no&sort=uncertain).
        filters = WorklistFilter(
            self.request.query_params,
            queryset=unreviewed_first(
                studies_visible(user=self.request.user, qs=study_with_details())
            ),
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

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        rows = response.data["results"] if isinstance(response.data, dict) else response.data
        study_list_read_record(
            user=request.user,
            ids=[row["id"] for row in rows],
            query=request.query_params.urlencode(),
            ip=client_ip(request),
        )
        return response

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
            ip=client_ip(request),
        )
        return Response({"id": study.pk, "status": study.status}, status=status.HTTP_201_CREATED)


class StudyDetailApi(RetrieveAPIView):
    serializer_class = StudySerializer

    def get_queryset(self):
        return studies_visible(user=self.request.user, qs=study_with_details())

    def get_object(self):
        study = super().get_object()
        audit_record(
            actor=self.request.user,
            action=AuditEvent.Action.STUDY_VIEW,
            study=study,
            ip=client_ip(self.request),
        )
        return study


class StudyPredictionsApi(ListAPIView):
    """GET: every prediction made for this study, newest first (one per model version)."""

    serializer_class = PredictionSerializer
    pagination_class = None

    def get_queryset(self):
        study = get_object_or_404(studies_visible(user=self.request.user), pk=self.kwargs["pk"])
        return study.predictions.select_related("model_version")
