"""API tokens: issue one for a username and password, revoke it. Tokens are stored hashed
and expire (django-rest-knox; xrayweb.accounts.services)."""

from drf_spectacular.utils import extend_schema
from knox.models import AuthToken
from rest_framework import status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from xrayweb.accounts.services import api_token_issue, api_tokens_revoke
from xrayweb.api.serializers import TokenSerializer
from xrayweb.errors import ApplicationError


class TokenApi(APIView):
    """POST username and password: a new API token and when it expires (each sign-in issues
    one; the key is shown only here). DELETE with a token: revoke that token; with a
    session: revoke all of the user's tokens."""

    def get_permissions(self):
        return [] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(request=AuthTokenSerializer, responses=TokenSerializer, auth=[])
    def post(self, request):
        form = AuthTokenSerializer(data=request.data, context={"request": request})
        valid = form.is_valid()
        if getattr(request, "axes_locked_out", False):  # django-axes, after repeated failures
            raise ApplicationError(
                "Too many failed logins for this account, or from this address; try again later.",
                status=429,
            )
        if not valid:
            raise ValidationError(form.errors)
        token, key = api_token_issue(user=form.validated_data["user"])
        return Response({"token": key, "expiry": token.expiry})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        used = request.auth if isinstance(request.auth, AuthToken) else None
        api_tokens_revoke(user=request.user, token=used)
        return Response(status=status.HTTP_204_NO_CONTENT)
