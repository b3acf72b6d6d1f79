"""The directory decides who a directory user is here: roles and site from their groups at
each sign-in, and the periodic check that turns off whoever the directory no longer lists.
Every change is audited twice over: the account-change receivers write each role, flag and
site change (``user.change``), and one ``user.directory`` row says what the directory did and
why."""

import logging

import ldap
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from ldap.filter import escape_filter_chars

from xrayweb.accounts.models import Membership
from xrayweb.accounts.roles import ADMIN, ROLES
from xrayweb.accounts.services import api_tokens_revoke, membership_set
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.directory.models import DirectoryAccount

logger = logging.getLogger(__name__)


class DirectoryUnreachable(Exception):
    """The directory did not answer: the check stops (never "everyone removed")."""


def directory_enabled() -> bool:
    return bool(getattr(settings, "AUTH_LDAP_SERVER_URI", ""))


def directory_grants(group_dns) -> tuple[set[str], str]:
    """The roles and the site that these directory groups give. With several site groups,
    the first by name (a user works at one site here)."""
    dns = {dn.lower() for dn in group_dns}
    roles = {role for role, dn in settings.DIRECTORY_ROLE_GROUPS.items() if dn in dns}
    sites = sorted(site for site, dn in settings.DIRECTORY_SITE_GROUPS.items() if dn in dns)
    return roles, (sites[0] if sites else "")


def _roles_set(user, roles: set[str]) -> dict:
    before = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    if before == roles:
        return {}
    others = list(user.groups.exclude(name__in=ROLES))
    user.groups.set(others + [Group.objects.get_or_create(name=r)[0] for r in sorted(roles)])
    user.__dict__.pop("_xrayweb_roles", None)
    return {"roles": {"from": sorted(before), "to": sorted(roles)}}


@transaction.atomic
def directory_user_apply(*, user, dn: str, roles: set[str], site: str, via: str) -> dict:
    """Make ``user`` what the directory says: exactly these role groups (other groups stay),
    the admin flags with the admin role, this site, and on again if the check had turned
    them off. Returns what changed; a change is audited."""
    account, created = DirectoryAccount.objects.select_for_update().get_or_create(
        user=user, defaults={"dn": dn}
    )
    changes = {"linked": True} if created else {}
    changes |= _roles_set(user, roles)
    admin = ADMIN in roles
    fields = []
    if user.is_staff != admin or user.is_superuser != admin:
        user.is_staff = user.is_superuser = admin
        fields += ["is_staff", "is_superuser"]
    if account.removed_at is not None and not user.is_active:
        user.is_active = True
        fields.append("is_active")
        changes["restored"] = True
    if fields:
        user.save(update_fields=fields)
    current = Membership.objects.filter(user=user).values_list("site", flat=True).first() or ""
    if current != site:
        membership_set(user=user, site=site)
        changes["site"] = {"from": current, "to": site}
    account.dn, account.checked_at = dn, timezone.now()
    account.removed_at, account.removed_reason = None, ""
    account.save()
    if changes:
        audit_record(
            actor=None,
            action=AuditEvent.Action.USER_DIRECTORY,
            detail={"user": user.pk, "username": user.username, "via": via, **changes},
        )
    return changes


@transaction.atomic
def directory_user_remove(*, account: DirectoryAccount, reason: str) -> int:
    """Turn off a user the directory no longer lets in: the account off (its sessions end:
    DirectoryBackend.get_user), every API token revoked. Returns the tokens revoked."""
    user = account.user
    revoked = api_tokens_revoke(user=user)
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    account.removed_at, account.removed_reason = timezone.now(), reason
    account.checked_at = account.removed_at
    account.save()
    audit_record(
        actor=None,
        action=AuditEvent.Action.USER_DIRECTORY,
        detail={
            "user": user.pk,
            "username": user.username,
            "via": "check",
            "removed": reason,
            "tokens_revoked": revoked,
        },
    )
    return revoked


def _connection():
    """A bound connection with the sign-in's own settings (TLS included)."""
    from xrayweb.directory.backend import DirectoryBackend

    config = DirectoryBackend().settings
    connection = ldap.initialize(config.SERVER_URI)
    for option, value in config.CONNECTION_OPTIONS.items():
        connection.set_option(option, value)
    if config.START_TLS:
        connection.start_tls_s()
    connection.simple_bind_s(config.BIND_DN, config.BIND_PASSWORD)
    return connection, config


def directory_lookup(connection, config, username: str) -> tuple[str, list[str]] | None:
    """The user's DN and group DNs, or None when the directory has no such user (or two).
    Raises ldap.LDAPError when the directory does not answer, unlike django-auth-ldap's
    searches, which log the error and return nothing: the check must not read "unreachable"
    as "removed"."""
    search = config.USER_SEARCH
    found = connection.search_s(
        search.base_dn,
        search.scope,
        search.filterstr % {"user": escape_filter_chars(username)},
        ["1.1"],
    )
    entries = [dn for dn, _ in found if dn is not None]  # referrals have no DN
    if len(entries) != 1:
        return None
    dn = entries[0]
    groups = config.GROUP_SEARCH
    member = f"(&{groups.filterstr}(member={escape_filter_chars(dn)}))"
    return dn, [
        g for g, _ in connection.search_s(groups.base_dn, groups.scope, member, ["1.1"]) if g
    ]


def directory_check() -> dict:
    """Every directory user against the directory now: whoever is gone from it, or from every
    role group, is turned off and loses their API tokens; the others get their roles and
    site again. Raises DirectoryUnreachable when the directory does not answer, at the
    start or at any user's search: the check stops there, so nobody is ever turned off for
    lack of an answer (the users checked before it keep what their answers decided).
    Run by Celery beat every DIRECTORY_CHECK_EVERY_SECONDS and by ``manage.py
    directory_check``."""
    if not directory_enabled():
        return {"checked": 0, "removed": 0, "changed": 0, "enabled": False}
    try:
        connection, config = _connection()
    except ldap.LDAPError as error:
        raise DirectoryUnreachable(type(error).__name__) from error
    counts = {"checked": 0, "removed": 0, "changed": 0, "tokens_revoked": 0, "enabled": True}
    accounts = DirectoryAccount.objects.select_related("user").order_by("pk")
    try:
        for account in accounts:
            if not account.user.is_active and account.removed_at is None:
                continue  # turned off by an admin here: the directory does not turn it on
            try:
                found = directory_lookup(connection, config, account.user.username)
            except ldap.LDAPError as error:
                raise DirectoryUnreachable(type(error).__name__) from error
            counts["checked"] += 1
            roles, site = directory_grants(found[1]) if found else (set(), "")
            if not roles:
                if account.removed_at is None:
                    reason = "not in the directory" if found is None else "in no role group"
                    counts["tokens_revoked"] += directory_user_remove(
                        account=account, reason=reason
                    )
                    counts["removed"] += 1
                continue
            if directory_user_apply(
                user=account.user, dn=found[0], roles=roles, site=site, via="check"
            ):
                counts["changed"] += 1
    finally:
        connection.unbind_s()
    logger.info("directory check: %s", counts)
    return counts
