"""Account and token changes into the audit chain (issue 27): roles (groups), the admin and
active flags, names, e-mail and password (that it changed, never the hash); API tokens
created and revoked (never the key). Connected in AuditConfig.ready; accounts sits beside
audit and neither imports the other, so the receivers live here and use only Django's user
model and knox's AuthToken; a user's site (accounts.Membership) by the model's name."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.utils import timezone

from xrayweb.audit.context import current_actor_and_ip
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record

WATCHED = (
    "username",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_staff",
    "is_superuser",
    "password",
)


def record_change(action: str, detail: dict) -> None:
    """An audit row for a change made through a model signal, by the signed-in actor if any."""
    actor, ip = current_actor_and_ip()
    audit_record(actor=actor, action=action, detail=detail, ip=ip)


def snapshot(fields: tuple[str, ...]):
    """A pre_save receiver that keeps the row's ``fields`` as stored (``instance._audit_before``,
    None for a new row), for a post_save receiver to compare. A save naming none of the fields
    (a login's last_login) costs no query."""

    def before(sender, instance, update_fields=None, **kwargs) -> None:
        if update_fields is not None and not set(update_fields) & set(fields):
            instance._audit_before = "unchanged"
            return
        query = sender.objects.filter(pk=instance.pk) if instance.pk else sender.objects.none()
        instance._audit_before = query.values(*fields).first()

    return before


_user_before = snapshot(WATCHED)


def _user_saved(sender, instance, created, **kwargs) -> None:
    old = getattr(instance, "_audit_before", None)
    if old == "unchanged":
        return
    if created or old is None:
        changed = [f for f in WATCHED if f != "password" and getattr(instance, f)]
        record_change(AuditEvent.Action.USER_CHANGE, {"user": instance.pk, "created": changed})
        return
    changed = [f for f in WATCHED if getattr(instance, f) != old[f]]
    if not changed:
        return  # a login updating last_login, say
    detail = {"user": instance.pk, "changed": changed}
    for flag in ("is_active", "is_staff", "is_superuser"):
        if flag in changed:
            detail[flag] = getattr(instance, flag)
    if "username" in changed:
        detail["username"] = [old["username"], instance.username]
    record_change(AuditEvent.Action.USER_CHANGE, detail)


def _groups_changed(sender, instance, action, pk_set, model, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not isinstance(instance, get_user_model()):
        return  # a group's members changed from the group's side: same rows, other instance
    names = sorted(model.objects.filter(pk__in=pk_set or []).values_list("name", flat=True))
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    record_change(
        AuditEvent.Action.USER_CHANGE,
        {"user": instance.pk, "groups": verb, "names": names, "now": _group_names(instance)},
    )


def _group_names(user) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def _token_saved(sender, instance, created, **kwargs) -> None:
    if created:
        expiry = instance.expiry.isoformat() if instance.expiry else None
        record_change(
            AuditEvent.Action.TOKEN_CHANGE,
            {"user": instance.user_id, "token": "created", "expiry": expiry},
        )


def _token_deleted(sender, instance, **kwargs) -> None:
    expired = instance.expiry is not None and instance.expiry <= timezone.now()
    record_change(
        AuditEvent.Action.TOKEN_CHANGE,
        {"user": instance.user_id, "token": "expired" if expired else "revoked"},
    )


_membership_before = snapshot(("site",))


def _membership_saved(sender, instance, created, **kwargs) -> None:
    old = getattr(instance, "_audit_before", None)
    if old == "unchanged" or (old is not None and old["site"] == instance.site):
        return
    before = "" if old is None else old["site"]
    if created and not instance.site:
        return  # a new membership with no site changes nothing anyone may see
    record_change(
        AuditEvent.Action.USER_CHANGE, {"user": instance.user_id, "site": [before, instance.site]}
    )


def _via(backend: str) -> str:
    """How a user signed in, from the backend Django recorded: the directory or locally."""
    return "directory" if backend.endswith("DirectoryBackend") else "local"


def _logged_in(sender, request, user, **kwargs) -> None:
    from xrayweb.audit.addresses import client_ip

    audit_record(
        actor=user,
        action=AuditEvent.Action.USER_LOGIN,
        detail={"via": _via(getattr(user, "backend", "") or "")},
        ip=client_ip(request) if request is not None else None,
    )


def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    """A refused login: the name tried (never the password: Django has masked it), and why,
    where the directory said (it could not be reached; a local account has the name).
    django-axes bounds how many of these one address can write."""
    from xrayweb.audit.addresses import client_ip

    ip = client_ip(request) if request is not None else None
    detail = {"username": str(credentials.get("username", ""))[:150]}
    reason = getattr(request, "directory_refusal", None)
    if reason:
        detail["directory"] = reason
    if getattr(request, "axes_locked_out", False):
        # Refused by the lockout: one row per address per interval, however many tries (an
        # unauthenticated caller must not flood the chain; axes keeps every attempt).
        since = timezone.now() - timedelta(seconds=settings.LOGIN_REFUSAL_AUDIT_SECONDS)
        recent = AuditEvent.objects.filter(
            action=AuditEvent.Action.USER_LOGIN_FAILED, ip=ip, created_at__gte=since
        )
        if recent.filter(detail__locked_out=True).exists():
            return
        detail["locked_out"] = True
    audit_record(actor=None, action=AuditEvent.Action.USER_LOGIN_FAILED, detail=detail, ip=ip)


def connect() -> None:
    from django.contrib.auth.signals import user_logged_in, user_login_failed
    from knox.models import AuthToken as Token

    user_logged_in.connect(_logged_in, dispatch_uid="audit-login")
    user_login_failed.connect(_login_failed, dispatch_uid="audit-login-failed")

    user = get_user_model()
    pre_save.connect(_user_before, sender=user, dispatch_uid="audit-user-before")
    post_save.connect(_user_saved, sender=user, dispatch_uid="audit-user-saved")
    m2m_changed.connect(_groups_changed, sender=user.groups.through, dispatch_uid="audit-groups")
    post_save.connect(_token_saved, sender=Token, dispatch_uid="audit-token-saved")
    post_delete.connect(_token_deleted, sender=Token, dispatch_uid="audit-token-deleted")
    # By name: accounts sits beside audit, and neither imports the other.
    pre_save.connect(_membership_before, sender="accounts.Membership", dispatch_uid="audit-site-b")
    post_save.connect(_membership_saved, sender="accounts.Membership", dispatch_uid="audit-site")
