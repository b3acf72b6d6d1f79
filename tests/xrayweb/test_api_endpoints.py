"""The API's operations beyond upload and detail: token revocation, predictions, readings,
model versions (admins), and the audit export."""

import pytest
from rest_framework.test import APIClient

from xrayweb.audit.models import AuditEvent
from xrayweb.inference.models import ModelVersion
from xrayweb.inference.services.registry import model_version_register
from xrayweb.review.services import review_submit


def test_a_token_is_issued_for_a_password_and_can_be_revoked(staff):
    client = APIClient()
    response = client.post(
        "/api/auth/token/", {"username": staff.username, "password": "pw-Test-12345"}
    )
    assert response.status_code == 200
    key = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/studies/").status_code == 200
    assert client.delete("/api/auth/token/").status_code == 204
    assert client.get("/api/studies/").status_code == 401  # the old key is dead
    wrong = APIClient().post("/api/auth/token/", {"username": staff.username, "password": "x"})
    assert wrong.status_code == 400 and wrong.json()["detail"]
    assert APIClient().delete("/api/auth/token/").status_code == 401


def test_predictions_and_readings_of_a_study(api_client, predicted, radiologist, staff):
    study = predicted({"covid19": 0.8, "normal": 0.2})
    review_submit(study=study, reviewer=radiologist, label="normal", comment="")
    api_client.force_authenticate(staff)
    (prediction,) = api_client.get(f"/api/studies/{study.pk}/predictions/").json()
    assert prediction["label"] == "covid19" and prediction["model_version"]
    (reading,) = api_client.get(f"/api/studies/{study.pk}/reviews/").json()
    assert reading["label"] == "normal" and reading["reviewer"] == radiologist.username
    # Staff read the readings; only radiologists add one.
    denied = api_client.post(f"/api/studies/{study.pk}/reviews/", {"label": "normal"})
    assert denied.status_code == 403
    assert api_client.get("/api/studies/999999/predictions/").status_code == 404


def test_a_pending_second_read_hides_the_first_from_other_readers(
    api_client, predicted, make_user, settings
):
    settings.REVIEW_SECOND_READ = True
    first, second = make_user("radiologist"), make_user("radiologist")
    study = predicted({"covid19": 0.8, "normal": 0.2})
    review_submit(study=study, reviewer=first, label="normal", comment="")
    api_client.force_authenticate(second)
    assert api_client.get(f"/api/studies/{study.pk}/reviews/").json() == []
    api_client.force_authenticate(first)
    assert len(api_client.get(f"/api/studies/{study.pk}/reviews/").json()) == 1


@pytest.mark.parametrize("role", ["staff", "radiologist"])
def test_model_versions_are_for_admins_only(api_client, make_user, active_version, role):
    api_client.force_authenticate(make_user(role))
    assert api_client.get("/api/model-versions/").status_code == 403
    activate = f"/api/model-versions/{active_version.pk}/activate/"
    assert api_client.post(activate).status_code == 403


def test_an_admin_lists_and_activates_model_versions_and_it_is_audited(
    api_client, admin_user, active_version, tiny_bundle, tmp_path
):
    api_client.force_authenticate(admin_user)
    versions = api_client.get("/api/model-versions/").json()["results"]
    assert [v["name"] for v in versions] == [active_version.name] and versions[0]["is_active"]
    # A second bundle (one trailing byte more: another hash), then switch to it.
    second_bundle = tmp_path / "second.safetensors"
    second_bundle.write_bytes(tiny_bundle.read_bytes() + b" ")
    second = model_version_register(bundle_path=second_bundle, name="second")
    response = api_client.post(f"/api/model-versions/{second.pk}/activate/")
    assert response.status_code == 200 and response.json()["is_active"]
    assert ModelVersion.objects.get(is_active=True) == second
    event = AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_ACTIVATE).first()
    assert event.actor == admin_user and event.detail == {
        "model_version": "second",
        "sha256": second.sha256,
        "previous": active_version.name,
        "via": "api",
    }
    assert api_client.post("/api/model-versions/999999/activate/").status_code == 404


def test_the_audit_export_is_csv_for_radiologists_and_admins(
    api_client, predicted, radiologist, staff
):
    predicted({"covid19": 0.8, "normal": 0.2})
    api_client.force_authenticate(staff)
    denied = api_client.get("/api/audit/export.csv")
    assert denied.status_code == 403 and denied["Content-Type"] == "application/json"
    api_client.force_authenticate(radiologist)
    response = api_client.get("/api/audit/export.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("prediction_id,") and len(lines) == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT_CSV).count() == 1


def test_api_errors_outside_any_view_are_json(api_client, staff):
    api_client.force_authenticate(staff)
    response = api_client.get("/api/no-such-thing/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


# Tokens (issue 27): they were stored in plain text and never expired.


def test_a_token_is_stored_only_as_a_digest_and_expires(staff, settings):
    from datetime import timedelta

    from django.utils import timezone
    from knox.models import AuthToken

    client = APIClient()
    answer = client.post(
        "/api/auth/token/", {"username": staff.username, "password": "pw-Test-12345"}
    ).json()
    key = answer["token"]
    (stored,) = AuthToken.objects.filter(user=staff)
    row = {f.attname: str(getattr(stored, f.attname)) for f in AuthToken._meta.fields}
    assert not any(key in value for value in row.values())  # before: the key was the row's id
    ttl = settings.REST_KNOX["TOKEN_TTL"]
    assert abs(stored.expiry - (timezone.now() + ttl)) < timedelta(minutes=1)
    assert answer["expiry"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/studies/").status_code == 200
    AuthToken.objects.filter(pk=stored.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    expired = client.get("/api/studies/")
    assert expired.status_code == 401 and expired.json()["detail"]
    assert not AuthToken.objects.filter(user=staff).exists()  # an expired token is deleted


def test_each_sign_in_is_its_own_token_up_to_a_limit_and_delete_revokes_only_its_own(
    staff, settings
):
    settings.REST_KNOX = settings.REST_KNOX | {"TOKEN_LIMIT_PER_USER": 2}
    sign_in = {"username": staff.username, "password": "pw-Test-12345"}
    first, second = (APIClient().post("/api/auth/token/", sign_in).json()["token"] for _ in "12")
    refused = APIClient().post("/api/auth/token/", sign_in)
    assert refused.status_code == 403 and "2 API tokens" in refused.json()["detail"]
    one = APIClient()
    one.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert one.delete("/api/auth/token/").status_code == 204
    two = APIClient()
    two.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert one.get("/api/studies/").status_code == 401
    assert two.get("/api/studies/").status_code == 200  # another client's token lives on


def test_a_plain_text_token_of_before_is_hashed_by_the_migration_and_still_works(
    transactional_db, staff
):
    """DRF's authtoken table (plain-text keys) is read, each key stored as a digest with an
    expiry, and the table emptied."""
    from importlib import import_module

    from django.apps import apps
    from django.db import connection
    from knox.models import AuthToken

    migration = import_module("xrayweb.accounts.migrations.0003_api_tokens_hashed")
    key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer, "
            "created timestamp)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", [key, staff.pk, "2026-01-01"]
        )
    try:
        with connection.schema_editor() as editor:
            migration.tokens_hash(apps, editor)
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")
    (stored,) = AuthToken.objects.filter(user=staff)
    assert key not in (stored.digest, stored.token_key) and stored.expiry
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/studies/").status_code == 200
