"""No study is lost when a worker, the broker or the database fails (real PostgreSQL, a
private Redis, real worker processes)."""

import io
import os
import signal

import numpy as np
import pytest
from django.db import connection
from PIL import Image

from tests.faults.conftest import wait_until
from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference.models import Prediction
from xrayweb.inference.services.claims import studies_reconcile
from xrayweb.inference.services.registry import model_version_register
from xrayweb.inference.tasks import predict_study, study_enqueue
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _reconcile(*, queued_seconds: int, lease_seconds: int) -> dict:
    """What the periodic task does, with these deadlines: find the stuck studies, enqueue."""
    result = studies_reconcile(
        queued_seconds=queued_seconds, lease_seconds=lease_seconds, max_attempts=3
    )
    for pk in result["overdue"]:
        study_enqueue(pk)
    return result


@pytest.fixture
def setup(tiny_bundle, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    version = model_version_register(bundle_path=tiny_bundle, activate=True)
    staff = user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    return version, staff


def _png(seed: int, width: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, width), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def _upload(staff, i: int, width: int = 64) -> Study:
    return study_create(
        user=staff, patient_id=f"F{i}", accession=f"A{i}", data=_png(i, width), filename="x.png"
    )


def _status(pk: int) -> str:
    return Study.objects.get(pk=pk).status


def test_a_worker_killed_mid_inference_loses_nothing(setup, workers, settings):
    _, staff = setup
    first = workers("w1", fault="slow", XRAYWEB_FAULT_SECONDS=30)
    study = _upload(staff, 1)
    wait_until(lambda: _status(study.pk) == "running", what="the first worker to claim it")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert _status(study.pk) == "running" and Prediction.objects.count() == 0
    # Another worker runs; the reconciler hands it the study once the lease has expired.
    workers("w2")
    result = _reconcile(queued_seconds=300, lease_seconds=0)
    assert result["requeued_running"] == 1
    wait_until(lambda: _status(study.pk) == "done", what="the second worker")
    assert Prediction.objects.filter(study=study).count() == 1


def test_a_task_delivered_twice_writes_one_prediction(setup, workers):
    _, staff = setup
    workers("w1")
    workers("w2")
    study = _upload(staff, 2)
    predict_study.delay(study.pk)  # a redelivery: the same study's task, again
    predict_study.delay(study.pk)
    wait_until(lambda: _status(study.pk) == "done", what="done")
    wait_until(lambda: True, timeout=3)  # let the duplicates finish too
    assert Prediction.objects.filter(study=study).count() == 1


def test_a_task_outliving_a_short_visibility_timeout_still_gives_one_prediction(setup, workers):
    _, staff = setup
    short = {"REDIS_VISIBILITY_TIMEOUT": 2, "REDIS_RESTORE_EVERY_SECONDS": 1}
    slow = workers("w1", fault="slow", XRAYWEB_FAULT_SECONDS=8, **short)
    study = _upload(staff, 6)
    wait_until(lambda: _status(study.pk) == "running", what="the slow worker's claim")
    other = workers("w2", **short)  # Redis hands the unacknowledged task to it after 2 s
    wait_until(lambda: _status(study.pk) == "done", timeout=60, what="done")
    wait_until(lambda: "succeeded" in slow.log_path.read_text(), timeout=60, what="w1 to finish")
    assert "tasks.predict_study[" in other.log_path.read_text()  # redelivered to w2
    assert Prediction.objects.filter(study=study).count() == 1


def test_a_dropped_database_connection_is_retried_and_the_study_completes(setup, workers):
    _, staff = setup
    workers("w1", fault="slow", XRAYWEB_FAULT_SECONDS=3)
    study = _upload(staff, 3)
    wait_until(lambda: _status(study.pk) == "running", what="a claim")
    with connection.cursor() as cursor:  # cut every other session to this database
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    wait_until(lambda: _status(study.pk) == "done", timeout=120, what="the retried task")
    assert Prediction.objects.filter(study=study).count() == 1
    assert Study.objects.get(pk=study.pk).attempts >= 2


def test_an_inference_error_fails_the_study_after_bounded_retries_and_the_worker_goes_on(
    setup, workers
):
    _, staff = setup
    worker = workers("w1", fault="broken", INFERENCE_MAX_ATTEMPTS=3)
    bad = _upload(staff, 4, width=37)  # the injected fault fires for 37-pixel-wide images
    wait_until(lambda: _status(bad.pk) == "failed", what="the failure")
    bad.refresh_from_db()
    assert bad.attempts == 3
    assert (
        bad.failure_reason
        == "gave up after 3 attempts: RuntimeError: injected fault: inference crashed"
    )
    good = _upload(staff, 5)
    wait_until(lambda: _status(good.pk) == "done", what="the next study")
    assert worker.poll() is None


def test_redis_stopped_and_restarted_during_100_uploads(setup, workers, redis_server):
    _, staff = setup
    workers("w1")
    workers("w2")
    ids = []
    for i in range(100):
        if i == 30:
            redis_server.stop()  # uploads go on: studies are stored and stay queued
        if i == 70:
            redis_server.start()
        ids.append(_upload(staff, 100 + i).pk)
    assert Study.objects.filter(pk__in=ids).count() == 100
    _reconcile(queued_seconds=0, lease_seconds=600)
    wait_until(
        lambda: not Study.objects.filter(pk__in=ids, status__in=["queued", "running"]).exists(),
        timeout=240,
        what="every study to finish",
    )
    statuses = set(Study.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses <= {"done", "failed"}
    for study in Study.objects.filter(pk__in=ids, status="failed"):
        assert study.failure_reason
    assert (
        Prediction.objects.filter(study_id__in=ids).count()
        == Study.objects.filter(pk__in=ids, status="done").count()
    )


def test_a_film_that_kills_the_worker_fails_alone_and_its_seven_batch_mates_finish(setup, workers):
    """Issue 27: the poison film. Before, the requeued task claimed its batch again and again
    (same task id, no attempt check), and nothing in the queue behind it ever ran."""
    _, staff = setup
    studies = [_upload(staff, 100 + i, width=37 if i == 3 else 64) for i in range(8)]
    poison = studies[3]
    # One batch of eight; a prefork child dies on it and its task is redelivered (acks_late).
    proc = workers(
        "w1", fault="crash", pool="prefork", INFERENCE_STUDIES_PER_TASK=8, INFERENCE_MAX_ATTEMPTS=3
    )
    wait_until(
        lambda: all(_status(s.pk) in ("done", "failed") for s in studies),
        timeout=300,
        what="every study of the batch to finish",
    )
    assert "WorkerLostError" in proc.log_path.read_text()  # the film really killed the child
    for study in studies:
        study.refresh_from_db()
        if study.pk == poison.pk:
            assert (study.status, study.attempts) == ("failed", 3)
            assert study.failure_reason.startswith(
                "the worker stopped while predicting this film, 3 times"
            )
            assert not Prediction.objects.filter(study=study).exists()
        else:
            assert study.status == "done" and Prediction.objects.filter(study=study).count() == 1
    # The worker is still serving: a healthy film after the storm is predicted.
    later = _upload(staff, 200)
    wait_until(lambda: _status(later.pk) == "done", what="a later study")
