"""API tokens: issue one for a username and password, revoke it."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from xrayweb.api.serializers import TokenSerializer
from xrayweb.errors import ApplicationError


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
