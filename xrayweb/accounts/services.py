from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models, transaction
from django.utils import timezone

from xrayweb.accounts.models import Membership, Preferences
from xrayweb.accounts.roles import ADMIN, ROLES
from xrayweb.errors import ApplicationError

DEMO_USERS = {"staff": "staff", "radiologist": "radiologist", "admin": ADMIN}


@transaction.atomic
def roles_ensure() -> None:
    for role in ROLES:
        Group.objects.get_or_create(name=role)


@transaction.atomic
def user_create_with_role(*, username: str, password: str, role: str, site: str | None = None):
    """Create or update a user with exactly one role; admins also get the Django admin site.
    ``site``: where they work (None leaves it as it is)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    roles_ensure()
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.is_staff = role == ADMIN
    user.is_superuser = role == ADMIN
    user.save()
    user.groups.set([Group.objects.get(name=role)])
    if site is not None:
        membership_set(user=user, site=site)
    return user


def membership_set(*, user, site: str) -> Membership:
    """File ``user`` under ``site`` ("" for none); audited as an account change."""
    membership, _ = Membership.objects.get_or_create(user=user)
    if membership.site != site:
        membership.site = site
        membership.save()
    user._xrayweb_site = site
    return membership


def demo_users_ensure(*, password: str) -> list[tuple[str, str]]:
    """One demo account per role, named after the role. Returns (username, role) pairs."""
    for username, role in DEMO_USERS.items():
        user_create_with_role(username=username, password=password, role=role)
    return list(DEMO_USERS.items())


def shortcuts_set(*, user, enabled: bool):
    """Turn the review page's single-key shortcuts on or off for ``user``."""
    preferences, _ = Preferences.objects.update_or_create(
        user=user, defaults={"shortcuts": enabled}
    )
    return preferences


def api_token_issue(*, user):
    """A new API token for ``user``: (the stored row, the key). Only the key's SHA-512 digest
    is stored (django-rest-knox), so the key is shown this once; it expires after
    REST_KNOX["TOKEN_TTL"]. Past API_TOKENS_PER_USER live tokens, refused (403) until one
    is revoked or expires. Audited (audit/changes.py)."""
    from knox.models import AuthToken
    from knox.settings import knox_settings

    live = AuthToken.objects.filter(user=user).filter(
        models.Q(expiry__isnull=True) | models.Q(expiry__gt=timezone.now())
    )
    limit = knox_settings.TOKEN_LIMIT_PER_USER
    if limit is not None and live.count() >= limit:
        raise ApplicationError(
            f"You already hold {limit} API tokens; revoke one (DELETE /api/auth/token/) "
            "or wait for one to expire.",
            status=403,
        )
    AuthToken.objects.filter(user=user, expiry__lte=timezone.now()).delete()
    return AuthToken.objects.create(user=user)


def api_tokens_revoke(*, user, token=None) -> int:
    """Revoke ``token`` (the one a request used), or every token of ``user``; audited."""
    from knox.models import AuthToken

    qs = AuthToken.objects.filter(user=user)
    if token is not None:
        qs = qs.filter(pk=token.pk)
    deleted = 0
    for row in qs:  # one by one, so that each revocation is audited
        row.delete()
        deleted += 1
    return deleted
