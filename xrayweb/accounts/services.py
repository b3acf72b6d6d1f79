from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from xrayweb.accounts.models import Membership, Preferences
from xrayweb.accounts.roles import ADMIN, ROLES

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
