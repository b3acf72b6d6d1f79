"""What `make run` does with a film from the PACS, with real processes: `storescu` to the
listener (`manage.py dicom_listener`), a Celery worker predicts it with the shipped model and
sends the SR and the Secondary Capture to Orthanc, into the film's own study."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier import DEFAULT_BUNDLE
from tests.conftest import redis_forget, worker_argv
from tests.xrayweb.dicomnet import films
from tests.xrayweb.dicomnet.peers import free_port, tool, wait_until
from tests.xrayweb.test_end_to_end import process_env
from xrayweb.dicomnet.models import Delivery, Destination
from xrayweb.inference.services import model_version_register
from xrayweb.studies.models import Study

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def node(settings, tmp_path, test_broker):
    """A worker and the listener, sharing this test's database, media and queues."""
    broker = test_broker.fresh(tmp_path / "broker")
    broker.use()
    port = free_port()
    env = process_env(settings=settings, broker=broker, data_dir=tmp_path / "data") | {
        "DICOM_PORT": str(port)
    }
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("worker", "listener")}
    procs = [
        subprocess.Popen(argv, cwd=ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT)
        for name, argv in (
            ("worker", worker_argv("--concurrency", "1", "--without-gossip", "--without-mingle")),
            ("listener", [sys.executable, "manage.py", "dicom_listener"]),
        )
    ]
    yield port, tmp_path
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for log in logs.values():
        log.close()
    test_broker.use()
    if broker.url.startswith("redis"):
        redis_forget(broker)


def _logs(folder: Path) -> str:
    return "\n".join(
        f"--- {name}\n{(folder / f'{name}.log').read_text()[-3000:]}"
        for name in ("worker", "listener")
    )


def test_a_film_from_the_pacs_is_predicted_and_its_results_go_back_into_its_study(
    node, orthanc_clean, tmp_path
):
    port, folder = node
    model_version_register(bundle_path=DEFAULT_BUNDLE, activate=True)
    Destination.objects.create(
        name="orthanc",
        kind=Destination.Kind.CSTORE,
        ae_title=orthanc_clean.aet,
        host="127.0.0.1",
        port=orthanc_clean.dicom_port,
    )
    ds = films.film(width=320)
    path = films.write(tmp_path, "film.dcm", ds)
    assert wait_until(lambda: _listening(port), timeout=60), _logs(folder)
    sent = subprocess.run(
        [tool("storescu"), "-aec", "XRAYWEB", "127.0.0.1", str(port), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    study = Study.objects.get(sop_instance_uid=ds.SOPInstanceUID)

    def delivered() -> bool:
        deliveries = Delivery.objects.filter(study=study)
        return deliveries.count() == 2 and all(
            d.status == Delivery.Status.DELIVERED for d in deliveries
        )

    deadline = time.monotonic() + 300
    assert wait_until(delivered, timeout=deadline - time.monotonic(), interval=0.5), (
        list(Delivery.objects.values_list("kind", "status", "last_error")),
        Study.objects.get(pk=study.pk).status,
        _logs(folder),
    )
    study.refresh_from_db()
    assert study.status == Study.Status.DONE and study.current_prediction is not None
    in_pacs = orthanc_clean.find_instances(StudyInstanceUID=ds.StudyInstanceUID)
    modalities = sorted(orthanc_clean.instance_tags(i["ID"])["Modality"] for i in in_pacs)
    assert modalities == ["OT", "SR"]  # the X-ray itself was never sent to this Orthanc


def _listening(port: int) -> bool:
    result = subprocess.run(
        [tool("echoscu"), "-aec", "XRAYWEB", "127.0.0.1", str(port)],
        capture_output=True,
        timeout=30,
    )
    return result.returncode == 0
