"""The directory's configuration, checked when Django starts (``manage.py check`` too)."""

from django.conf import settings
from django.core.checks import Error, register

from xrayweb.accounts.roles import ROLES


@register()
def directory_roles_check(app_configs, **kwargs) -> list[Error]:
    """LDAP_ROLE_GROUPS may name only the roles xrayweb has."""
    unknown = sorted(set(getattr(settings, "DIRECTORY_ROLE_GROUPS", {})) - set(ROLES))
    if not unknown:
        return []
    return [
        Error(
            f"LDAP_ROLE_GROUPS names unknown roles {unknown}",
            hint=f"the roles are {', '.join(ROLES)}",
            id="xrayweb.directory.E001",
        )
    ]
