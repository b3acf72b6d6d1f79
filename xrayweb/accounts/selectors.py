from django.contrib.auth import get_user_model

from xrayweb.accounts.models import Membership, Preferences
from xrayweb.accounts.roles import CAN_MANAGE_MODELS, user_has_any_role
from xrayweb.errors import ApplicationError


def admin_named(*, username: str | None, doing: str):
    """The admin account a management command acts for: commands that change what the system
    does name their actor, so the audit trail says who."""
    if not username:
        raise ApplicationError(f"Name the admin who is doing this with --user to {doing}.")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None or not user_has_any_role(user, CAN_MANAGE_MODELS):
        raise ApplicationError(f"{username!r} is not an admin; only admins may {doing}.")
    return user


def shortcuts_enabled(*, user) -> bool:
    """Whether the review page's single-key shortcuts are on for this user (on unless they
    turned them off)."""
    if not getattr(user, "is_authenticated", False):
        return True
    stored = Preferences.objects.filter(user=user).values_list("shortcuts", flat=True).first()
    return True if stored is None else stored


def user_site(*, user) -> str:
    """The site a user works at ("" for none, or for anonymous users)."""
    if not getattr(user, "is_authenticated", False):
        return ""
    cached = getattr(user, "_xrayweb_site", None)
    if cached is None:
        cached = Membership.objects.filter(user=user).values_list("site", flat=True).first() or ""
        user._xrayweb_site = cached
    return cached
