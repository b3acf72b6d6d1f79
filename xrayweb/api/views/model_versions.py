"""The model registry for admins: list the versions, activate one."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from xrayweb.api.permissions import CanManageModels
from xrayweb.api.serializers import ModelVersionSerializer
from xrayweb.audit.addresses import client_ip
from xrayweb.inference.models import ModelVersion
from xrayweb.inference.services.registry import model_version_activate


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
        version = model_version_activate(
            version=get_object_or_404(ModelVersion, pk=pk),
            actor=request.user,
            via="api",
            ip=client_ip(request),
        )
        return Response(ModelVersionSerializer(version).data)
