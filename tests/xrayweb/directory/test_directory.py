"""Sign-in from the hospital directory (issue 29), against a real OpenLDAP server (slapd,
tests/xrayweb/directory/slapd.py): roles and site from directory groups, the account made or
updated at each sign-in, whoever leaves the directory or its groups shut out (sessions and
API tokens included) by the check, local accounts still working and never taken over, the
directory being down, LDAPS and StartTLS. Every login, refusal and directory change is in
the audit chain."""

import pytest
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.xrayweb.directory.conftest import use_directory
from xrayweb.accounts.roles import user_roles
from xrayweb.accounts.services import user_create_with_role
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import chains_check
from xrayweb.directory.models import DirectoryAccount
from xrayweb.directory.services import DirectoryUnreachable, directory_check
from xrayweb.directory_config import directory_settings

pytestmark = pytest.mark.django_db
User = get_user_model()


def sign_in(client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def events(action: str) -> list[dict]:
    return list(
        AuditEvent.objects.filter(action=action).order_by("pk").values_list("detail", flat=True)
    )


def test_a_directory_user_signs_in_with_the_role_and_site_of_their_groups(client, directory):
    response = sign_in(client, "rita", "rita-pw-1")

    assert response.status_code == 302, response.content[:500]
    rita = User.objects.get(username="rita")
    assert user_roles(rita) == {"radiologist"}
    assert rita.membership.site == "north"
    assert (rita.first_name, rita.last_name, rita.email) == ("Rita", "Reader", "rita@hospital.test")
    assert not rita.has_usable_password()  # the directory holds the password, not xrayweb
    assert not rita.is_staff and not rita.is_superuser
    assert DirectoryAccount.objects.get(user=rita).dn == "uid=rita,ou=people,dc=hospital,dc=test"
    assert client.get("/worklist/").status_code == 200
    login = AuditEvent.objects.get(action=AuditEvent.Action.USER_LOGIN)
    assert login.actor == rita and login.detail == {"via": "directory"}
    linked = events(AuditEvent.Action.USER_DIRECTORY)
    assert linked == [
        {
            "user": rita.pk,
            "username": "rita",
            "via": "sign-in",
            "linked": True,
            "roles": {"from": [], "to": ["radiologist"]},
            "site": {"from": "", "to": "north"},
        }
    ]
    assert chains_check(via="test").ok


def test_a_directory_admin_gets_the_admin_site(client, directory):
    assert sign_in(client, "ada", "ada-pw-1").status_code == 302
    ada = User.objects.get(username="ada")
    assert user_roles(ada) == {"admin"} and ada.is_staff and ada.is_superuser


def test_a_wrong_password_is_refused_and_audited(client, directory):
    response = sign_in(client, "rita", "not-her-password")

    assert response.status_code == 200
    assert b"did not match" in response.content
    assert not User.objects.filter(username="rita").exists()
    assert events(AuditEvent.Action.USER_LOGIN_FAILED) == [{"username": "rita"}]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.USER_LOGIN).exists()


def test_someone_in_no_role_group_cannot_sign_in(client, directory):
    assert sign_in(client, "olga", "olga-pw-1").status_code == 200
    assert not User.objects.filter(username="olga").exists()
    assert events(AuditEvent.Action.USER_LOGIN_FAILED) == [{"username": "olga"}]


def test_a_role_and_site_change_in_the_directory_applies_at_the_next_sign_in(client, directory):
    assert sign_in(client, "sam", "sam-pw-1").status_code == 302
    sam = User.objects.get(username="sam")
    assert user_roles(sam) == {"staff"} and sam.membership.site == "south"
    client.logout()

    directory.member_remove("ward-staff", "sam")
    directory.member_add("radiologists", "sam")
    directory.member_remove("site-south", "sam")
    directory.member_add("site-north", "sam")
    assert sign_in(client, "sam", "sam-pw-1").status_code == 302

    sam = User.objects.get(username="sam")
    assert user_roles(sam) == {"radiologist"} and sam.membership.site == "north"
    last = events(AuditEvent.Action.USER_DIRECTORY)[-1]
    assert last["roles"] == {"from": ["staff"], "to": ["radiologist"]}
    assert last["site"] == {"from": "south", "to": "north"}
    # The generic account-change rows are written too: the groups, and the site.
    changes = events(AuditEvent.Action.USER_CHANGE)
    assert any(c.get("groups") == "added" and c["names"] == ["radiologist"] for c in changes)
    assert {"user": sam.pk, "site": ["south", "north"]} in changes


def test_removed_from_the_role_group_the_user_loses_sessions_and_tokens_at_the_check(
    client, directory
):
    assert sign_in(client, "rita", "rita-pw-1").status_code == 302
    from rest_framework.test import APIClient

    api = APIClient()
    token = api.post("/api/auth/token/", {"username": "rita", "password": "rita-pw-1"})
    assert token.status_code == 200, token.content
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    assert api.get("/api/studies/").status_code == 200
    assert directory_check()["removed"] == 0  # still in the group: nothing changes

    directory.member_remove("radiologists", "rita")
    counts = directory_check()

    assert counts == {
        "checked": 1,
        "removed": 1,
        "changed": 0,
        "tokens_revoked": 1,
        "enabled": True,
    }
    rita = User.objects.get(username="rita")
    assert not rita.is_active
    assert client.get("/worklist/").status_code == 302  # the open session is gone
    assert api.get("/api/studies/").status_code == 401  # and the token
    assert sign_in(client, "rita", "rita-pw-1").status_code == 200
    removed = events(AuditEvent.Action.USER_DIRECTORY)[-1]
    assert removed["removed"] == "in no role group" and removed["tokens_revoked"] == 1
    assert directory_check()["removed"] == 0  # removed once, not again at every check

    # Back in the group: the next sign-in lets her in again.
    directory.member_add("radiologists", "rita")
    assert sign_in(client, "rita", "rita-pw-1").status_code == 302
    assert User.objects.get(username="rita").is_active
    assert events(AuditEvent.Action.USER_DIRECTORY)[-1]["restored"] is True


def test_someone_deleted_from_the_directory_is_turned_off_at_the_check(client, directory):
    assert sign_in(client, "sam", "sam-pw-1").status_code == 302
    directory.person_delete("sam")

    call_command("directory_check")

    assert not User.objects.get(username="sam").is_active
    assert events(AuditEvent.Action.USER_DIRECTORY)[-1]["removed"] == "not in the directory"


def test_an_account_an_admin_turned_off_stays_off_whatever_the_directory_says(client, directory):
    assert sign_in(client, "rita", "rita-pw-1").status_code == 302
    client.logout()
    User.objects.filter(username="rita").update(is_active=False)

    assert sign_in(client, "rita", "rita-pw-1").status_code == 200
    assert directory_check()["checked"] == 0
    assert not User.objects.get(username="rita").is_active


def test_local_accounts_still_sign_in_and_are_never_taken_over(client, directory):
    user_create_with_role(username="admin", password="local-break-glass-1", role="admin")

    # The directory's "admin" (another person, another password) does not get in as it...
    assert sign_in(client, "admin", "directory-admin-pw").status_code == 200
    refused = events(AuditEvent.Action.USER_LOGIN_FAILED)
    assert refused == [{"username": "admin", "directory": "a local account has this name"}]
    assert not DirectoryAccount.objects.exists()
    # ...and the local password still works.
    assert sign_in(client, "admin", "local-break-glass-1").status_code == 302
    assert AuditEvent.objects.get(action=AuditEvent.Action.USER_LOGIN).detail == {"via": "local"}


def test_when_the_directory_is_down_local_accounts_work_and_nobody_is_removed(client, directory):
    assert sign_in(client, "rita", "rita-pw-1").status_code == 302
    client.logout()
    user_create_with_role(username="breakglass", password="local-break-glass-1", role="admin")
    directory.stop()
    try:
        response = sign_in(client, "rita", "rita-pw-1")
        assert response.status_code == 200
        assert b"directory cannot be reached" in response.content
        assert events(AuditEvent.Action.USER_LOGIN_FAILED)[-1] == {
            "username": "rita",
            "directory": "the directory could not be reached",
        }
        with pytest.raises(DirectoryUnreachable):
            directory_check()
        with pytest.raises(CommandError, match="could not be reached"):
            call_command("directory_check")
        assert User.objects.get(username="rita").is_active
        assert sign_in(client, "breakglass", "local-break-glass-1").status_code == 302
    finally:
        directory.start()


def test_ldaps_and_starttls_verify_the_directory_certificate(client, settings, slapd):
    use_directory(settings, slapd.tls_uri, ca_file=slapd.ca_file)
    assert sign_in(client, "rita", "rita-pw-1").status_code == 302
    client.logout()

    use_directory(settings, slapd.uri, start_tls=True, ca_file=slapd.ca_file)
    assert sign_in(client, "sam", "sam-pw-1").status_code == 302
    client.logout()

    # A certificate from a CA the settings do not trust: refused, not accepted blindly.
    use_directory(settings, slapd.tls_uri, ca_file="/etc/ssl/certs/ca-certificates.crt")
    assert sign_in(client, "ada", "ada-pw-1").status_code == 200
    assert not User.objects.filter(username="ada").exists()


def test_settings_that_would_let_nobody_or_everyone_in_are_refused(settings):
    common = {"uri": "ldap://x", "user_base": "ou=p", "group_base": "ou=g"}
    with pytest.raises(ValueError, match="LDAP_ROLE_GROUPS is empty"):
        directory_settings(**common, role_groups={})
    with pytest.raises(ValueError, match="%\\(user\\)s"):
        directory_settings(**common, role_groups={"staff": "cn=s"}, user_filter="(uid=*)")
    settings.DIRECTORY_ROLE_GROUPS = {"nurse": "cn=nurses"}
    errors = [e for e in run_checks() if e.id == "xrayweb.directory.E001"]
    assert errors and "nurse" in errors[0].msg


def test_locked_out_tries_write_one_audit_row_per_interval(client, directory, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(8):
        sign_in(client, "rita", "wrong")
    refused = events(AuditEvent.Action.USER_LOGIN_FAILED)
    assert len([r for r in refused if r.get("locked_out")]) == 1
    assert len(refused) <= 3


def _settings_from(env_extra: dict[str, str], tmp_path) -> str:
    """What settings.py makes of these environment variables, in a fresh process."""
    import os
    import subprocess
    import sys

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LDAP_", "DIRECTORY_"))},
        "XRAYWEB_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "",
        **env_extra,
    }
    code = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        "s.AUTHENTICATION_BACKENDS, s.DIRECTORY_ROLE_GROUPS, s.DIRECTORY_SITE_GROUPS, "
        "'check-directory' in s.CELERY_BEAT_SCHEDULE, getattr(s, 'AUTH_LDAP_START_TLS', None)]))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_settings_read_the_directory_from_the_environment(tmp_path):
    import json

    # As compose passes them when no directory is set: empty values, directory sign-in off.
    off = json.loads(
        _settings_from(
            {"LDAP_SERVER_URI": "", "LDAP_ROLE_GROUPS": "", "LDAP_SITE_GROUPS": ""}, tmp_path
        )
    )
    assert off == [
        ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"],
        {},
        {},
        False,
        None,
    ]
    on = json.loads(
        _settings_from(
            {
                "LDAP_SERVER_URI": "ldap://directory.hospital.test",
                "LDAP_START_TLS": "1",
                "LDAP_USER_BASE": "ou=people,dc=hospital,dc=test",
                "LDAP_GROUP_BASE": "ou=groups,dc=hospital,dc=test",
                "LDAP_ROLE_GROUPS": '{"radiologist": "CN=Readers,OU=Groups,DC=hospital,DC=test"}',
                "LDAP_SITE_GROUPS": '{"north": "cn=site-north,ou=groups,dc=hospital,dc=test"}',
            },
            tmp_path,
        )
    )
    assert on[0][1] == "xrayweb.directory.backend.DirectoryBackend"
    assert on[1] == {"radiologist": "cn=readers,ou=groups,dc=hospital,dc=test"}
    assert on[2] == {"north": "cn=site-north,ou=groups,dc=hospital,dc=test"}
    assert on[3] is True and on[4] is True


def test_admins_see_which_accounts_come_from_the_directory_and_cannot_edit_them(
    client, directory, make_user
):
    assert sign_in(client, "rita", "rita-pw-1").status_code == 302
    client.logout()
    directory.member_remove("radiologists", "rita")
    directory_check()
    account = DirectoryAccount.objects.get(user__username="rita")

    client.force_login(make_user("admin"))
    page = client.get("/admin/directory/directoryaccount/")
    assert page.status_code == 200
    assert b"uid=rita,ou=people" in page.content and b"in no role group" in page.content
    assert client.get("/admin/directory/directoryaccount/add/").status_code == 403
    url = f"/admin/directory/directoryaccount/{account.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert DirectoryAccount.objects.filter(pk=account.pk).exists()
    client.force_login(make_user("staff"))
    assert client.get("/admin/directory/directoryaccount/").status_code == 302  # not staff
