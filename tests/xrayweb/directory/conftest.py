from collections.abc import Iterator

import pytest

from tests.xrayweb.directory.slapd import Slapd, group_dn
from xrayweb.directory_config import directory_settings

# The hospital's directory: who works where, as which role. "olga" is in a site group but in
# no role group; "admin" has the name of a local break-glass account.
PEOPLE = {
    "rita": {"password": "rita-pw-1", "given": "Rita", "sn": "Reader"},
    "sam": {"password": "sam-pw-1", "given": "Sam", "sn": "Staffer"},
    "ada": {"password": "ada-pw-1", "given": "Ada", "sn": "Admin"},
    "olga": {"password": "olga-pw-1", "given": "Olga", "sn": "Outsider"},
    "admin": {"password": "directory-admin-pw", "given": "Not", "sn": "Local"},
}
GROUPS = {
    "radiologists": ["rita"],
    "ward-staff": ["sam"],
    "xrayweb-admins": ["ada", "admin"],
    "site-north": ["rita", "olga"],
    "site-south": ["sam"],
}
ROLE_GROUPS = {
    "radiologist": group_dn("radiologists"),
    "staff": group_dn("ward-staff"),
    "admin": group_dn("xrayweb-admins"),
}
SITE_GROUPS = {"north": group_dn("site-north"), "south": group_dn("site-south")}


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.setup()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slapd(slapd_server: Slapd) -> Slapd:
    """The session's slapd, running (a test may have stopped it), seeded afresh."""
    slapd_server.start()
    slapd_server.seed(PEOPLE, GROUPS)
    return slapd_server


def use_directory(settings, uri: str, **options) -> None:
    """Turn directory sign-in on for this test, as settings.py does from the environment."""
    values = directory_settings(
        uri=uri,
        user_base="ou=people,dc=hospital,dc=test",
        group_base="ou=groups,dc=hospital,dc=test",
        role_groups=ROLE_GROUPS,
        site_groups=SITE_GROUPS,
        bind_dn="cn=admin,dc=hospital,dc=test",
        bind_password="root-secret",
        timeout=2.0,
        **options,
    )
    for name, value in values.items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "xrayweb.directory.backend.DirectoryBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]


@pytest.fixture
def directory(settings, slapd: Slapd, db) -> Slapd:
    use_directory(settings, slapd.uri)
    return slapd
