"""GET /api/audit/events/: admins read the audit trail, paginated and filtered; reading it is
itself audited; bad filters are a 400."""

from datetime import timedelta

import pytest
from django.utils import timezone

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record


@pytest.fixture
def trail(predicted, radiologist, admin_user):
    study = predicted({"normal": 0.9})
    for _ in range(3):
        audit_record(actor=radiologist, action=AuditEvent.Action.STUDY_VIEW, study=study)
    audit_record(actor=admin_user, action=AuditEvent.Action.EXPORT_CSV, detail={"rows": 2})
    return study


def _get(client, query: str = ""):
    return client.get(f"/api/audit/events/{query}")


def test_admins_page_through_the_trail_newest_first(client, admin_user, trail):
    client.force_login(admin_user)
    body = _get(client, "?per_page=2").json()
    total = AuditEvent.objects.count() - 1  # this read's own event is written first
    assert body["count"] >= total and len(body["results"]) == 2 and body["next"]
    seqs = [e["seq"] for e in body["results"]]
    assert seqs == sorted(seqs, reverse=True)
    assert set(body["results"][0]) == {
        "id",
        "created_at",
        "actor",
        "action",
        "study",
        "ip",
        "detail",
        "seq",
    }


def test_filters_narrow_by_action_actor_study_and_time(client, admin_user, radiologist, trail):
    client.force_login(admin_user)
    views = _get(client, f"?action=study.view&actor={radiologist.username}").json()
    assert views["count"] == 3
    assert {(e["action"], e["actor"], e["study"]) for e in views["results"]} == {
        ("study.view", radiologist.username, trail.pk)
    }
    on_study = _get(client, f"?study={trail.pk}").json()["results"]
    assert {e["study"] for e in on_study} == {trail.pk}
    assert {"study.upload", "prediction.record", "study.view"} <= {e["action"] for e in on_study}
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert _get(client, f"?since={future.replace('+', '%2B')}").json()["count"] == 0
    assert _get(client, f"?until={future.replace('+', '%2B')}").json()["count"] > 4


def test_reading_the_trail_is_itself_in_the_trail(client, admin_user, trail):
    client.force_login(admin_user)
    client.get("/api/audit/events/?action=export.csv", REMOTE_ADDR="192.0.2.9")
    event = AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_READ).get()
    assert event.actor == admin_user and event.ip == "192.0.2.9"
    assert event.detail == {"action": "export.csv"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?action=study.delete", "action"),
        ("?study=abc", "study"),
        ("?study=0", "study"),
        ("?study=99999999999999999999999", "study"),
        ("?since=yesterday", "since"),
        ("?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "non_field_errors"),
    ],
)
def test_bad_filters_are_a_400_naming_the_field(client, admin_user, trail, query, field):
    client.force_login(admin_user)
    before = AuditEvent.objects.count()
    response = _get(client, query)
    assert response.status_code == 400 and field in response.json()["errors"]
    assert AuditEvent.objects.count() == before  # a refused read records nothing


def test_only_admins_read_the_trail(client, radiologist, staff, trail):
    for user in (radiologist, staff):
        client.force_login(user)
        assert _get(client).status_code == 403


def test_the_endpoint_and_its_filters_are_in_the_openapi_schema(client, admin_user):
    client.force_login(admin_user)
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/audit/events/"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"action", "actor", "study", "since", "until", "page", "per_page"} <= names
