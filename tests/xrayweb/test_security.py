"""CSRF on session POSTs, login lockout, security headers, and pages with no inline script or
style (the CSP allows none)."""

from html.parser import HTMLParser

import pytest
from django.test import Client
from rest_framework.test import APIClient

PASSWORD = "pw-Test-12345"


def test_a_session_post_without_the_csrf_token_is_refused(make_user, png):
    staff = make_user("staff")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    page = client.post("/upload/", {"patient_id": "P", "accession": "A"})
    assert page.status_code == 403
    api = client.post("/api/studies/", {"patient_id": "P", "accession": "A"})
    assert api.status_code == 403 and "CSRF" in api.json()["detail"]
    # With the token from the form, the same POST gets through to validation.
    token = client.get("/upload/").cookies["csrftoken"].value
    assert client.post("/upload/", {"csrfmiddlewaretoken": token}).status_code == 400


def test_repeated_failed_logins_lock_the_account_from_that_address(make_user):
    user = make_user("radiologist")
    client = Client()
    for _ in range(4):
        response = client.post("/accounts/login/", {"username": user.username, "password": "x"})
        assert response.status_code == 200  # the form again, with an error
    fifth = client.post("/accounts/login/", {"username": user.username, "password": "x"})
    assert fifth.status_code == 429  # AXES_FAILURE_LIMIT = 5
    locked = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert locked.status_code == 429  # even the right password, until the cool-off
    assert "_auth_user_id" not in client.session


def test_behind_the_proxy_a_lockout_holds_only_for_the_address_that_failed(make_user, settings):
    """Issue 27: django-axes keyed on REMOTE_ADDR, which behind nginx is always the proxy, so
    one attacker's five bad passwords locked the user out for everyone."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]  # the test client's REMOTE_ADDR is the proxy
    user = make_user("radiologist")
    attacker = Client(HTTP_X_FORWARDED_FOR="203.0.113.9")
    for _ in range(5):
        attacker.post("/accounts/login/", {"username": user.username, "password": "x"})
    right = {"username": user.username, "password": PASSWORD}
    assert attacker.post("/accounts/login/", right).status_code == 429
    colleague = Client(HTTP_X_FORWARDED_FOR="10.1.2.3")
    response = colleague.post("/accounts/login/", right)
    assert response.status_code == 302 and "_auth_user_id" in colleague.session


def test_password_spraying_across_usernames_locks_the_address_not_the_users(make_user, settings):
    """Issue 27: axes counted failures per (username, address), so two tries on each of
    many accounts from one address never locked anything. Twenty failures from one address,
    over ten usernames, lock that address; the same user signs in from another."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    user = make_user("radiologist")
    sprayer = Client(HTTP_X_FORWARDED_FOR="203.0.113.50")
    for i in range(20):
        sprayer.post("/accounts/login/", {"username": f"someone-{i % 10}", "password": "x"})
    right = {"username": user.username, "password": PASSWORD}
    assert sprayer.post("/accounts/login/", right).status_code == 429
    api = APIClient(HTTP_X_FORWARDED_FOR="203.0.113.50")
    locked = api.post("/api/auth/token/", right)
    assert locked.status_code == 429 and "from this address" in locked.json()["detail"]
    elsewhere = Client(HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert elsewhere.post("/accounts/login/", right).status_code == 302


def test_a_few_failures_from_one_address_lock_nobody_else_out(make_user, settings):
    """A ward behind one NAT address: several colleagues' typos stay under the limit."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    users = [make_user("staff") for _ in range(4)]
    ward = Client(HTTP_X_FORWARDED_FOR="10.9.9.9")
    for user in users:
        for _ in range(3):
            ward.post("/accounts/login/", {"username": user.username, "password": "typo"})
    assert (
        ward.post(
            "/accounts/login/", {"username": users[0].username, "password": PASSWORD}
        ).status_code
        == 302
    )


def test_repeated_failed_token_requests_lock_the_account_too(make_user):
    user = make_user("staff")
    api = APIClient()
    for _ in range(5):
        api.post("/api/auth/token/", {"username": user.username, "password": "x"})
    locked = api.post("/api/auth/token/", {"username": user.username, "password": PASSWORD})
    assert locked.status_code == 429 and "Too many failed logins" in locked.json()["detail"]


def test_security_headers(client, make_user):
    client.force_login(make_user("radiologist"))
    response = client.get("/worklist/")
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


class _Inline(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {n}=" for n in names if n == "style" or n.startswith("on")]


@pytest.mark.parametrize(
    ("role", "path"),
    [
        (None, "/accounts/login/"),
        ("staff", "/upload/"),
        ("staff", "/worklist/"),
        ("radiologist", "/worklist/"),
        ("radiologist", "/studies/{pk}/"),
        ("radiologist", "/agreement/"),
        ("admin", "/audit/log/"),
        ("staff", "/api/docs/"),
    ],
)
def test_pages_have_no_inline_script_or_style(client, make_user, predicted, role, path):
    # With a lung mask, so that the review page has its contour controls too.
    study = predicted(
        {"covid19": 0.8, "normal": 0.2}, lung_mask="masks/1-x.png", cam_lung_fraction=0.3
    )
    if role:
        client.force_login(make_user(role))
    response = client.get(path.format(pk=study.pk))
    assert response.status_code == 200
    if path == "/studies/{pk}/":
        assert b'id="contour-toggle"' in response.content
    parser = _Inline()
    parser.feed(response.content.decode())
    assert parser.found == []


@pytest.mark.parametrize("name", ["../../etc/x.png", "a\x00b.png", "a" * 300 + ".png"])
def test_the_upload_page_refuses_file_names_with_paths_or_control_characters(
    client, make_user, png, name
):
    from tests.security.hostile_uploads import raw_upload
    from xrayweb.studies.models import Study

    client.force_login(make_user("staff"))
    body = raw_upload(png(), name).replace(b'name="image"', b'name="images"')
    response = client.generic(
        "POST", "/upload/", body, content_type="multipart/form-data; boundary=B"
    )
    assert response.status_code == 400 and b"Nothing was stored" in response.content
    assert not Study.objects.exists()


def test_a_session_ends_after_the_idle_timeout_and_each_request_renews_it(make_user):
    """Issue 27: sessions lasted Django's two weeks, with no idle timeout."""
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    client = Client()
    client.force_login(make_user("radiologist"))
    assert client.get("/worklist/").status_code == 200
    session = Session.objects.get(session_key=client.session.session_key)
    left = session.expire_date - timezone.now()
    assert timedelta(minutes=29) < left <= timedelta(minutes=30)
    # 31 minutes without a request: the session has expired, and the next page asks to log in.
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() - timedelta(minutes=1))
    response = client.get("/worklist/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
