"""Retries with backoff and a final failed state; the reconciler; broker settings."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from xrayweb.inference import runtime
from xrayweb.inference.services.claims import studies_reconcile
from xrayweb.inference.tasks import predict_study, reconcile_studies
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create


@pytest.fixture
def make_study(staff, png):
    def make(i: int = 0) -> Study:
        return study_create(user=staff, patient_id=f"P{i}", accession=f"A{i}", data=png(seed=i))

    return make


def _predict_fails(mocker, times: int):
    """The next ``times`` predict() calls raise (an injected fault), later ones work."""
    real = runtime.predictor_for
    calls = {"n": 0}

    def flaky(version):
        predictor = real(version)
        if calls["n"] < times:
            calls["n"] += 1
            raise RuntimeError("injected fault: device lost")
        return predictor

    mocker.patch.object(runtime, "predictor_for", side_effect=flaky)
    return calls


def test_a_transient_fault_is_retried_and_the_study_completes(
    active_version, make_study, mocker, settings
):
    settings.INFERENCE_RETRY_BACKOFF = 0
    study = make_study()
    calls = _predict_fails(mocker, times=1)
    predict_study.apply(args=[study.pk])  # eager: Celery runs the retry at once
    study.refresh_from_db()
    assert calls["n"] == 1
    assert study.status == "done" and study.attempts == 2 and study.predictions.count() == 1


def test_a_persistent_fault_fails_the_study_with_the_reason_after_bounded_attempts(
    active_version, make_study, mocker, settings
):
    settings.INFERENCE_RETRY_BACKOFF = 0
    settings.INFERENCE_MAX_ATTEMPTS = 3
    study, other = make_study(0), make_study(1)
    settings.INFERENCE_STUDIES_PER_TASK = 1
    _predict_fails(mocker, times=100)
    predict_study.apply(args=[study.pk])
    study.refresh_from_db()
    assert study.status == "failed" and study.attempts == 3
    assert (
        study.failure_reason
        == "gave up after 3 attempts: RuntimeError: injected fault: device lost"
    )
    mocker.stopall()
    predict_study.apply(args=[other.pk])  # the worker keeps serving other studies
    other.refresh_from_db()
    assert other.status == "done"


def test_no_model_fails_at_once_without_retrying(db, make_study):
    study = make_study()
    result = predict_study.apply(args=[study.pk])
    assert isinstance(result.result, runtime.InferenceError)
    study.refresh_from_db()
    assert study.status == "failed" and "no active model" in study.failure_reason


def test_the_reconcile_service_returns_the_overdue_ids_and_enqueues_nothing(make_study, mocker):
    delay = mocker.patch.object(predict_study, "delay")
    make_study(0)  # queued just now: not overdue
    lost = make_study(1)
    Study.objects.filter(pk=lost.pk).update(status_changed_at=timezone.now() - timedelta(hours=2))
    result = studies_reconcile(queued_seconds=300, lease_seconds=600, max_attempts=3)
    assert result == {"requeued_running": 0, "overdue": [lost.pk]}
    delay.assert_not_called()


def test_the_reconciler_requeues_stuck_studies(active_version, make_study, mocker, settings):
    settings.RECONCILE_QUEUED_SECONDS, settings.INFERENCE_LEASE_SECONDS = 300, 600
    settings.INFERENCE_MAX_ATTEMPTS = 3
    delay = mocker.patch.object(predict_study, "delay")
    fresh, lost, dead_worker, hopeless = (make_study(i) for i in range(4))
    old = timezone.now() - timedelta(hours=2)
    Study.objects.filter(pk=lost.pk).update(status_changed_at=old)
    Study.objects.filter(pk=dead_worker.pk).update(
        status="running", status_changed_at=old, attempts=1
    )
    Study.objects.filter(pk=hopeless.pk).update(status="running", status_changed_at=old, attempts=3)
    result = reconcile_studies()  # the periodic task: the service finds them, the task enqueues
    assert result == {"requeued_running": 2, "enqueued": 2}
    assert sorted(call.args[0] for call in delay.call_args_list) == sorted(
        [lost.pk, dead_worker.pk]
    )
    states = dict(Study.objects.values_list("pk", "status"))
    assert states == {
        fresh.pk: "queued",
        lost.pk: "queued",
        dead_worker.pk: "queued",
        hopeless.pk: "failed",
    }
    assert "gave up after 3 attempts" in Study.objects.get(pk=hopeless.pk).failure_reason
    # After the reconciler and a worker run, nothing is stuck.
    for pk in (lost.pk, dead_worker.pk, fresh.pk):
        runtime.prediction_batch_run(study_id=pk, max_studies=1)
    assert set(Study.objects.values_list("status", flat=True)) == {"done", "failed"}


def test_the_reconcile_and_status_commands(active_version, make_study, capsys, worker_answering):
    make_study()
    call_command("reconcile")
    assert "enqueued 0 queued studies" in capsys.readouterr().out
    call_command("status", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["studies"] == {"queued": 1}


def _settings_with(env: dict) -> dict:
    """Import the settings in a fresh interpreter with this environment."""
    code = (
        "import json, django; from django.conf import settings as s; django.setup(); "
        "print(json.dumps({k: getattr(s, k) for k in ('CELERY_BROKER_URL', "
        "'CELERY_BROKER_TRANSPORT_OPTIONS', 'CELERY_TASK_TIME_LIMIT', 'TRAINING_TIME_LIMIT', "
        "'CELERY_TASK_ACKS_LATE', 'CELERY_TASK_REJECT_ON_WORKER_LOST', "
        "'CELERY_WORKER_PREFETCH_MULTIPLIER', 'CELERY_WORKER_MAX_MEMORY_PER_CHILD')}, default=str))"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "xrayweb.settings", **env}
    out = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_redis_visibility_timeout_outlasts_every_task_time_limit():
    conf = _settings_with({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert conf["CELERY_BROKER_URL"].startswith("redis://")
    visibility = conf["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"]
    assert visibility > conf["CELERY_TASK_TIME_LIMIT"] and visibility > conf["TRAINING_TIME_LIMIT"]
    assert conf["CELERY_TASK_ACKS_LATE"] and conf["CELERY_TASK_REJECT_ON_WORKER_LOST"]
    assert conf["CELERY_WORKER_PREFETCH_MULTIPLIER"] == 1
    assert conf["CELERY_WORKER_MAX_MEMORY_PER_CHILD"] > 0


def test_media_storage_is_local_by_default_and_s3_through_django_storages():
    assert _storages({})["default"]["BACKEND"].endswith("FileSystemStorage")
    s3 = _storages(
        {
            "MEDIA_STORAGE": "s3",
            "S3_BUCKET": "xrays",
            "S3_ENDPOINT_URL": "https://minio.example.org",
        }
    )["default"]
    assert s3["BACKEND"] == "storages.backends.s3.S3Storage"
    assert s3["OPTIONS"]["bucket_name"] == "xrays" and s3["OPTIONS"]["default_acl"] == "private"
    assert s3["OPTIONS"]["endpoint_url"] == "https://minio.example.org"


def _storages(env: dict) -> dict:
    code = (
        "import json, django; from django.conf import settings as s; print(json.dumps(s.STORAGES))"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "xrayweb.settings", **env}
    out = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_retraining_reads_images_from_any_storage(db, staff, png, mocker, settings, tmp_path):
    from django.core.files.storage import default_storage

    from xrayweb.inference.retraining import local_copy

    settings.MODEL_DIR = tmp_path / "models"
    study = study_create(user=staff, patient_id="S3", accession="S3", data=png())
    assert local_copy(study.image.name) == Path(default_storage.path(study.image.name))

    class Remote:  # a storage with no local paths, like S3
        def path(self, name):
            raise NotImplementedError

        def open(self, name, mode="rb"):
            return default_storage.open(name, mode)

    mocker.patch("xrayweb.inference.retraining.default_storage", Remote())
    copy = local_copy(study.image.name)  # what a remote storage gets: a cached copy
    assert copy.is_relative_to(settings.MODEL_DIR) and copy.read_bytes() == png()
