"""Sign-in from the hospital directory: django-auth-ldap's backend, with three rules of ours.

- A local account is never taken over: when a local user (no DirectoryAccount) has the name,
  this backend declines and only the local password can sign them in (break-glass admins).
- At each sign-in the directory's groups set the roles and the site (``directory_user_apply``).
- An account that is off (the directory check removed it, or an admin turned it off) neither
  signs in nor keeps a session: django-auth-ldap's own ``get_user`` does not look at
  ``is_active``, so a removed user's open session would have lived on.
"""

import logging

import ldap
from django.contrib.auth import get_user_model
from django_auth_ldap.backend import LDAPBackend

logger = logging.getLogger(__name__)

# What a refused directory sign-in is noted as on the request, for the audit row and the
# login page's message.
UNREACHABLE = "the directory could not be reached"
LOCAL_NAME = "a local account has this name"


def directory_error_note(sender, context, user, request=None, exception=None, **kwargs) -> None:
    """django-auth-ldap's ``ldap_error`` signal: note on the request that the directory could
    not be reached, so the login page says so instead of "wrong password"."""
    if request is not None and isinstance(exception, ldap.SERVER_DOWN | ldap.TIMEOUT):
        request.directory_refusal = UNREACHABLE
    logger.warning("directory error while %s: %s", context, type(exception).__name__)


class DirectoryBackend(LDAPBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username and self._local_account(username.strip()):
            if request is not None:
                request.directory_refusal = LOCAL_NAME
            return None
        return super().authenticate(request, username, password, **kwargs)

    def authenticate_ldap_user(self, ldap_user, password):
        from xrayweb.directory.services import directory_grants, directory_user_apply

        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        roles, site = directory_grants(ldap_user.group_dns)
        directory_user_apply(user=user, dn=ldap_user.dn, roles=roles, site=site, via="sign-in")
        return user if user.is_active else None

    def get_user(self, user_id):
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    @staticmethod
    def _local_account(username: str) -> bool:
        users = get_user_model().objects.filter(username__iexact=username)
        return users.filter(directory_account__isnull=True).exists()
