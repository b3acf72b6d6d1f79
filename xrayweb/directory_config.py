"""Directory sign-in's settings (issue 29), built from the environment by settings.py: the
AUTH_LDAP_* settings django-auth-ldap reads, and the role and site groups. A project-level
module like brokers.py: settings.py imports it, so it imports no app (the role names are
checked by the directory app's system check, xrayweb/directory/checks.py).

One directory server (LDAP_SERVER_URI: ldap:// with LDAP_START_TLS, or ldaps://), a service
account that may search it (LDAP_BIND_DN, LDAP_BIND_PASSWORD), where the people and groups
are (LDAP_USER_BASE with LDAP_USER_FILTER, LDAP_GROUP_BASE; groups are groupOfNames, the
common form in OpenLDAP and Active Directory's "group"), and which group makes which role
(LDAP_ROLE_GROUPS, JSON: {"radiologist": "cn=radiologists,ou=groups,dc=hospital,dc=org"})
and which site (LDAP_SITE_GROUPS, JSON: {"Site A": "cn=site-a,ou=groups,..."}). Only members
of a role group may sign in."""

import ldap
from django_auth_ldap.config import GroupOfNamesType, LDAPGroupQuery, LDAPSearch


def directory_settings(
    *,
    uri: str,
    user_base: str,
    group_base: str,
    role_groups: dict[str, str],
    site_groups: dict[str, str] | None = None,
    bind_dn: str = "",
    bind_password: str = "",
    user_filter: str = "(uid=%(user)s)",
    start_tls: bool = False,
    ca_file: str = "",
    timeout: float = 5.0,
) -> dict:
    """The settings of one directory, as a dict of Django settings (AUTH_LDAP_* for
    django-auth-ldap, DIRECTORY_* for xrayweb). Refuses a configuration that would let
    everyone in or nobody: no role group, or a user filter without %(user)s."""
    if not role_groups:
        raise ValueError("LDAP_ROLE_GROUPS is empty: nobody could sign in from the directory")
    if "%(user)s" not in user_filter:
        raise ValueError("LDAP_USER_FILTER must contain %(user)s")
    if not (user_base and group_base):
        raise ValueError("LDAP_USER_BASE and LDAP_GROUP_BASE are needed with LDAP_SERVER_URI")
    options = {
        ldap.OPT_NETWORK_TIMEOUT: timeout,
        ldap.OPT_TIMEOUT: timeout,
        ldap.OPT_REFERRALS: 0,
    }
    if uri.startswith("ldaps://") or start_tls:
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        if ca_file:
            options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
        options[ldap.OPT_X_TLS_NEWCTX] = 0  # applies the TLS options above; must come last
    required = None
    for dn in role_groups.values():
        required = LDAPGroupQuery(dn) if required is None else required | LDAPGroupQuery(dn)
    return {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": bind_password,
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_CONNECTION_OPTIONS": options,
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_base, ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(
            group_base, ldap.SCOPE_SUBTREE, "(objectClass=groupOfNames)"
        ),
        "AUTH_LDAP_GROUP_TYPE": GroupOfNamesType(),
        "AUTH_LDAP_REQUIRE_GROUP": required,
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        # The directory is the truth at every sign-in: names, roles and site are written again.
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "DIRECTORY_ROLE_GROUPS": {role: dn.lower() for role, dn in role_groups.items()},
        "DIRECTORY_SITE_GROUPS": {site: dn.lower() for site, dn in (site_groups or {}).items()},
    }
