"""Upload a real sample X-ray through the API; a real Celery worker process predicts it."""

import io
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from PIL import Image

from classifier import DEFAULT_BUNDLE
from tests.conftest import redis_forget, worker_argv
from xrayweb.inference.services.registry import model_version_register
from xrayweb.studies.models import Study

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _test_database_url() -> str:
    """This test's database (SQLite file or PostgreSQL test database) for the worker."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def process_env(*, settings, broker, data_dir: Path) -> dict:
    """The environment of a process (a worker, the DICOM listener) that shares this test's
    database, media and queues."""
    return (
        os.environ
        | broker.worker_env
        | {
            "DATABASE_URL": _test_database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "XRAYWEB_DATA_DIR": str(data_dir),
        }
    )


@pytest.fixture
def worker(settings, tmp_path, test_broker):
    """A real `celery worker` process sharing this test's database, media and broker (the
    suite's Redis under make test, else a folder), on queues of its own."""
    yield from _worker(settings, tmp_path, test_broker)


def _worker(settings, tmp_path, test_broker, **extra_env):
    broker = test_broker.fresh(tmp_path / "broker")
    broker.use()
    env = process_env(settings=settings, broker=broker, data_dir=tmp_path / "worker-data")
    env |= extra_env
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        worker_argv(
            "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat"
        ),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc, tmp_path / "worker.log"
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    test_broker.use()
    if broker.url.startswith("redis"):
        redis_forget(broker)


def _wait_for(study_id: int, timeout: float = 240.0) -> Study:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = Study.objects.get(pk=study_id)
        if study.status in (Study.Status.DONE, Study.Status.FAILED):
            return study
        time.sleep(0.5)
    raise AssertionError(f"study {study_id} still {study.status} after {timeout}s")


def _upload_and_wait(api_client, staff, image_path, key: str, log) -> Study:
    """Upload one X-ray through the API as staff and wait until the worker has predicted it."""
    api_client.force_authenticate(staff)
    response = api_client.post(
        "/api/studies/",
        {
            "image": SimpleUploadedFile(image_path.name, image_path.read_bytes()),
            "patient_id": key,
            "accession": f"ACC-{key}",
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    study = _wait_for(response.json()["id"])
    assert study.status == Study.Status.DONE, (study.failure_reason, log.read_text()[-3000:])
    return study


def test_upload_through_the_api_is_predicted_by_a_real_worker(
    worker, api_client, staff, sample_images
):
    version = model_version_register(bundle_path=DEFAULT_BUNDLE, activate=True)
    proc, log = worker
    study = _upload_and_wait(api_client, staff, sample_images[0], "E2E-1", log)
    prediction = study.predictions.get()
    assert prediction.model_version == version
    assert prediction.bundle_sha256 == version.sha256
    assert prediction.label in version.classes
    assert abs(sum(prediction.probabilities.values()) - 1.0) < 1e-4
    assert set(prediction.member_probabilities) == {m["name"] for m in version.members}
    assert prediction.duration_ms > 0
    for path in prediction.heatmaps.values():
        overlay = _stored_png(path)
        # The X-ray's aspect ratio, at most 512 pixels on the longest side (the page scales it).
        scale = min(1.0, 512 / max(study.image_width, study.image_height))
        expected = (round(study.image_width * scale), round(study.image_height * scale))
        assert overlay.size == expected
    # The shipped bundle carries a lung segmenter: the mask and the CAM's share in the lungs.
    assert prediction.lung_mask.startswith("masks/")
    assert default_storage.exists(prediction.lung_mask)
    assert 0.0 <= prediction.cam_lung_fraction <= 1.0

    body = api_client.get(f"/api/studies/{study.pk}/").json()
    assert body["status"] == "done"
    assert body["prediction"]["label"] == prediction.label
    assert body["prediction"]["cam_lung_fraction"] == prediction.cam_lung_fraction
    assert proc.poll() is None  # the worker is still serving


def _stored_png(path: str) -> Image.Image:
    with default_storage.open(path) as fh:
        image = Image.open(io.BytesIO(fh.read()))
        image.load()
    return image


def test_a_bundle_with_a_lung_segmenter_stores_the_mask_and_the_cam_lung_fraction(
    worker, api_client, staff, sample_images, tiny_bundle_with_lungs
):
    """The worker loads a bundle that carries a segmenter (built for the test, so this does
    not depend on what the shipped bundle has): the mask is stored beside the heatmaps, at
    their size, and the API links it and gives the share of the heat inside the lungs."""
    version = model_version_register(bundle_path=tiny_bundle_with_lungs, activate=True)
    image_path = next(p for p in sample_images if Image.open(p).size[0] > 300)  # not square
    proc, log = worker
    study = _upload_and_wait(api_client, staff, image_path, "E2E-2", log)
    prediction = study.predictions.get()
    assert prediction.model_version == version
    assert prediction.lung_mask.startswith("masks/")
    mask = _stored_png(prediction.lung_mask)
    heatmap = _stored_png(prediction.heatmaps["fused"])
    assert mask.format == "PNG" and mask.mode == "1"
    assert mask.size == heatmap.size == (study.image_width, study.image_height)
    assert 0.0 <= prediction.cam_lung_fraction <= 1.0

    body = api_client.get(f"/api/studies/{study.pk}/").json()["prediction"]
    assert isinstance(body["cam_lung_fraction"], float)
    assert body["cam_lung_fraction"] == prediction.cam_lung_fraction
    assert 0.0 <= body["cam_lung_fraction"] <= 1.0
    served = api_client.get(body["lung_mask"])
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    with default_storage.open(prediction.lung_mask) as fh:
        assert b"".join(served.streaming_content) == fh.read()
    assert proc.poll() is None


@pytest.fixture
def beating_worker(settings, tmp_path, test_broker):
    """A real worker that writes its heartbeat every half second."""
    yield from _worker(settings, tmp_path, test_broker, WORKER_HEARTBEAT_SECONDS="0.5")


def test_a_real_worker_answers_and_its_death_is_seen(beating_worker, client, settings):
    """Issue 27: the embedded worker died under load and /healthz kept saying all was well.
    A real worker writes its heartbeat; killed, it stops, and /healthz says so."""
    import signal

    from xrayweb.ops.models import WorkerHeartbeat

    settings.WORKER_STALE_SECONDS = 2.0
    settings.HEALTHZ_CACHE_SECONDS = 0
    proc, log = beating_worker
    deadline = time.monotonic() + 120
    while not WorkerHeartbeat.objects.exists():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    assert client.get("/healthz").json()["workers"]["ok"] is True
    (beat,) = WorkerHeartbeat.objects.all()
    assert "inference" in beat.queues and beat.pid
    proc.send_signal(signal.SIGKILL)  # no clean shutdown, as with kombu's JSONDecodeError
    proc.wait(timeout=30)
    time.sleep(3.0)
    workers = client.get("/healthz").json()["workers"]
    assert workers["ok"] is False
    assert workers["error"].startswith("no worker has answered for ")
