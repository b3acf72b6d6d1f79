"""Who may do what, changed, is in the audit chain (issue 27): accounts (roles, active,
password, names), API tokens, DICOM destinations. Before, none of it was."""

from django.contrib.auth.models import Group
from django.http import HttpResponse
from rest_framework.test import APIClient

from xrayweb.audit.context import AuditContextMiddleware
from xrayweb.audit.models import AuditEvent

PASSWORD = "pw-Test-12345"


def _as(user, rf, change) -> None:
    """Run ``change`` inside a request by ``user``, as a view would."""

    def view(request):
        change()
        return HttpResponse()

    request = rf.post("/admin/")
    request.user = user
    AuditContextMiddleware(view)(request)


def _changes(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_an_admin_changing_a_role_the_active_flag_and_a_password_is_audited(
    rf, admin_user, make_user
):
    target = make_user("staff")
    before = len(_changes("user.change"))

    def change():
        target.groups.set([Group.objects.get(name="radiologist")])
        target.is_active = False
        target.set_password("another-Password-9")
        target.save()

    _as(admin_user, rf, change)
    events = _changes("user.change")[before:]
    assert all(e.actor == admin_user and e.actor_username == admin_user.username for e in events)
    groups = [e.detail for e in events if "groups" in e.detail]
    assert {"user": target.pk, "groups": "removed", "names": ["staff"], "now": []} in groups
    assert groups[-1] == {
        "user": target.pk,
        "groups": "added",
        "names": ["radiologist"],
        "now": ["radiologist"],
    }
    (saved,) = [e.detail for e in events if "changed" in e.detail]
    assert saved == {"user": target.pk, "changed": ["is_active", "password"], "is_active": False}
    assert not any("pbkdf2" in str(e.detail) for e in events)  # never the hash


def test_a_rename_names_both_and_a_login_is_no_change(rf, admin_user, make_user, client):
    target = make_user("radiologist")
    old = target.username

    def rename():
        target.username = "renamed-reader"
        target.save()

    _as(admin_user, rf, rename)
    (event,) = [e for e in _changes("user.change") if "username" in e.detail]
    assert event.detail["username"] == [old, "renamed-reader"]
    before = len(_changes("user.change"))
    assert client.post("/accounts/login/", {"username": "renamed-reader", "password": PASSWORD})
    assert len(_changes("user.change")) == before  # last_login is not a change of rights


def test_tokens_created_and_revoked_are_audited_without_their_keys(make_user):
    user = make_user("staff")
    api = APIClient()
    key = api.post("/api/auth/token/", {"username": user.username, "password": PASSWORD}).json()
    key = key["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.delete("/api/auth/token/").status_code == 204
    created, revoked = _changes("token.change")[-2:]
    assert created.detail["token"] == "created" and created.detail["user"] == user.pk
    assert created.detail["expiry"]
    assert revoked.detail == {"user": user.pk, "token": "revoked"} and revoked.actor == user
    assert not any(key in str(e.detail) for e in _changes("token.change"))


def test_destination_changes_are_audited_without_credentials(rf, admin_user):
    from xrayweb.dicomnet.models import Destination

    def add():
        Destination.objects.create(
            name="pacs", kind="stow", stow_url="https://u:secret@pacs.example.org/studies"
        )

    _as(admin_user, rf, add)
    destination = Destination.objects.get()
    pk = destination.pk

    def disable():
        destination.enabled = False
        destination.save()

    _as(admin_user, rf, disable)
    _as(admin_user, rf, destination.delete)
    added, disabled, removed = _changes("destination.change")
    assert added.actor == admin_user
    assert added.detail["created"]["stow_url"] == "https://pacs.example.org/studies"
    assert "secret" not in str(added.detail)
    assert disabled.detail == {"destination": pk, "changed": {"enabled": False}}
    assert removed.detail["removed"] == "pacs"
