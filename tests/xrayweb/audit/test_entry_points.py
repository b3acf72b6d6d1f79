"""Every entry point that changes a model version or a reading leaves an audit event that
names its actor: the web pages, the API, the Django admin, the management commands and the
Celery task. A new caller of the services that make those changes fails the enumeration
below until it is listed here with a test."""

import ast
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.conftest import SAMPLE_MANIFEST
from tests.xrayweb.test_retrain import FAST
from xrayweb.audit.models import AuditEvent
from xrayweb.inference.models import ModelVersion

ROOT = Path(__file__).resolve().parents[3]
# The services that change a model version or a reading, and so audit.
SERVICES = {"model_version_activate", "model_version_register", "review_submit"}
# Every module that calls one of them, and the tests below that pin its event down.
CALLERS = {
    "xrayweb/api/views/model_versions.py": ["api_activate"],
    "xrayweb/api/views/reviews.py": ["api_reading"],
    "xrayweb/review/views.py": ["page_reading"],
    "xrayweb/inference/admin.py": ["admin_activate"],
    "xrayweb/inference/management/commands/models.py": ["command_activate"],
    "xrayweb/inference/retraining.py": ["command_retrain", "task_retrain"],
    "xrayweb/inference/services/registry.py": ["ensure_model"],  # register -> activate, and itself
}


def _callers() -> set[str]:
    found = set()
    for path in (ROOT / "xrayweb").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in SERVICES:
                    found.add(str(path.relative_to(ROOT)))
    return found


def test_every_caller_of_the_audited_services_is_an_entry_point_tested_here():
    assert _callers() == set(CALLERS)
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert {e for entries in CALLERS.values() for e in entries} <= tested


def _activation(actor, via: str) -> AuditEvent:
    event = AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_ACTIVATE).first()
    assert event is not None, "no model.activate event"
    assert event.actor == actor and event.detail["via"] == via
    return event


@pytest.fixture
def second_version(active_version, tmp_path, tiny_bundle):
    from xrayweb.inference.services.registry import model_version_register

    copy = tmp_path / "second.safetensors"
    copy.write_bytes(tiny_bundle.read_bytes() + b" ")
    return model_version_register(bundle_path=copy, name="second")


def test_api_activate(client, admin_user, second_version):
    client.force_login(admin_user)
    response = client.post(
        f"/api/model-versions/{second_version.pk}/activate/", REMOTE_ADDR="192.0.2.4"
    )
    assert response.status_code == 200
    event = _activation(admin_user, "api")
    assert event.ip == "192.0.2.4" and event.detail["previous"] == "tiny"


def test_admin_activate(client, admin_user, second_version):
    client.force_login(admin_user)
    response = client.post(
        "/admin/inference/modelversion/",
        {"action": "activate", "_selected_action": [second_version.pk]},
        REMOTE_ADDR="192.0.2.5",
    )
    assert response.status_code == 302
    second_version.refresh_from_db()
    assert second_version.is_active
    assert _activation(admin_user, "admin").ip == "192.0.2.5"


def test_command_activate(admin_user, second_version):
    call_command("models", "--activate", "second", "--user", admin_user.username)
    assert _activation(admin_user, "command").detail["model_version"] == "second"


def test_command_retrain(db, admin_user):
    args = ["--manifest", str(SAMPLE_MANIFEST), "--no-reviews", "--activate"]
    call_command("retrain", *args, "--user", admin_user.username, *FAST)
    version = ModelVersion.objects.get()
    registered = AuditEvent.objects.get(action=AuditEvent.Action.MODEL_REGISTER)
    assert registered.actor == admin_user and registered.detail["via"] == "retrain"
    assert _activation(admin_user, "retrain").detail["sha256"] == version.sha256


def test_task_retrain(db, admin_user):
    from xrayweb.inference.tasks import retrain_model

    config = {
        "archs": ["mobilenet_v3_small"],
        "epochs": [1],
        "input_size": 32,
        "batch_size": 16,
        "device": "cpu",
    }
    job = {
        "manifests": [str(SAMPLE_MANIFEST)],
        "from_reviews": False,
        "config": config,
        "user_id": admin_user.pk,
        "activate": True,
        "force": False,
        "name": "queued",
    }
    retrain_model(job)
    assert _activation(admin_user, "retrain").detail["model_version"] == "queued"


def test_ensure_model(db):
    call_command("ensure_model")
    registered = AuditEvent.objects.get(action=AuditEvent.Action.MODEL_REGISTER)
    assert registered.actor is None and registered.detail["via"] == "ensure_model"
    _activation(None, "ensure_model")  # the system itself, on a fresh install


def _reading(radiologist, study) -> AuditEvent:
    event = AuditEvent.objects.get(action=AuditEvent.Action.REVIEW_CREATE)
    assert event.actor == radiologist and event.study_id == study.pk
    return event


def test_page_reading(client, predicted, radiologist):
    study = predicted({"normal": 0.9})
    client.force_login(radiologist)
    response = client.post(f"/studies/{study.pk}/review/", {"label": "normal"})
    assert response.status_code == 302
    _reading(radiologist, study)


def test_api_reading(client, predicted, radiologist):
    study = predicted({"normal": 0.9})
    client.force_login(radiologist)
    response = client.post(f"/api/studies/{study.pk}/reviews/", {"label": "covid19"})
    assert response.status_code == 201
    _reading(radiologist, study)
