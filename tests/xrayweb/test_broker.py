"""Tasks the web enqueues reach the broker the suite runs on: under make test, the machine's
Redis (TEST_REDIS_URL, keys under a prefix of the run's own); otherwise a filesystem broker."""

import pytest

from tests.xrayweb.test_reliability import _settings_with
from xrayweb.celery import app
from xrayweb.studies.services import study_create


@pytest.fixture
def own_queues(test_broker, tmp_path):
    broker = test_broker.fresh(tmp_path / "broker")
    broker.use()
    yield broker
    test_broker.use()
    if broker.url.startswith("redis"):
        from tests.conftest import redis_forget

        redis_forget(broker)


def test_an_upload_publishes_its_inference_task_on_the_broker(
    db, own_queues, staff, png, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        study = study_create(user=staff, patient_id="Q1", accession="Q1", data=png())
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("inference")
        message = queue.get(timeout=10)
        assert message.headers["task"] == "xrayweb.inference.tasks.predict_study"
        args, kwargs, _ = message.decode()
        assert args == [study.pk] and kwargs == {}  # a primary key, nothing about the patient
        message.ack()
        queue.close()
    if own_queues.url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(own_queues.url)
        prefix = own_queues.options["global_keyprefix"]
        assert client.keys(f"{prefix}*"), "the task went through this Redis, under the prefix"
        assert not client.keys("inference"), "nothing outside the prefix"


def test_redis_key_prefix_keeps_deployments_sharing_one_redis_apart():
    conf = _settings_with({"REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_KEY_PREFIX": "site-a:"})
    assert conf["CELERY_BROKER_TRANSPORT_OPTIONS"]["global_keyprefix"] == "site-a:"
    conf = _settings_with({"REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_KEY_PREFIX": ""})
    assert "global_keyprefix" not in conf["CELERY_BROKER_TRANSPORT_OPTIONS"]
