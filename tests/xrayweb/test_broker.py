"""Tasks the web enqueues reach the broker the suite runs on: under make test, the machine's
Redis (TEST_REDIS_URL, keys under a prefix of the run's own); otherwise a filesystem broker."""

from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.xrayweb.test_reliability import _settings_with
from xrayweb.celery import app
from xrayweb.studies.services.ingest import study_create


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


# The embedded broker under load (issue 27): kombu's filesystem channel creates a message
# file, then writes it; a reader that lists the folder in between reads an empty file, and
# the worker dies with JSONDecodeError (celery/kombu#1551). The window is made wide here by
# holding the writer at the point between the two steps.


def _channel(transport_cls, folder):
    from kombu import Connection

    from xrayweb.brokers import filesystem_broker_options

    connection = Connection("filesystem://", transport=transport_cls)
    connection.transport_options = filesystem_broker_options(folder)
    return connection, connection.default_channel


@contextmanager
def _put_held(channel, folder: Path, written, suffix: str, prefix: str = ""):
    """A message put from another thread, held (until ``written`` is set) once a file named
    ``prefix…suffix`` is in the queue folder; the body runs while it is held."""
    import threading

    writer = threading.Thread(target=channel._put, args=("inference", {"task": 1}))
    writer.start()
    try:
        while not any(
            p.name.startswith(prefix) and p.name.endswith(suffix) for p in folder.iterdir()
        ):
            pass
        yield
    finally:
        written.set()
        writer.join()


def test_stock_kombu_reads_a_message_still_being_written_and_fails(tmp_path, monkeypatch):
    """The bug as kombu has it: the finding, reproduced."""
    import json
    import threading

    from kombu.transport import filesystem

    connection, channel = _channel(filesystem.Transport, tmp_path)
    written = threading.Event()
    monkeypatch.setattr(filesystem, "lock", lambda f, flags: written.wait(10))
    with (
        _put_held(channel, tmp_path / "queue", written, ".inference.msg"),
        pytest.raises(json.JSONDecodeError),
    ):
        channel._get("inference")
    connection.release()


def test_a_reader_never_takes_a_message_still_being_written(tmp_path, monkeypatch):
    import os
    import queue
    import threading

    from xrayweb.brokers import AtomicChannel, AtomicFilesystemTransport

    connection, channel = _channel(AtomicFilesystemTransport, tmp_path)
    assert isinstance(channel, AtomicChannel)
    written = threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd):  # the file is written, not yet renamed into place
        written.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    folder = tmp_path / "queue"
    with (
        _put_held(channel, folder, written, ".inference.msg", prefix=".writing-"),
        pytest.raises(queue.Empty),
    ):
        channel._get("inference")
    assert channel._get("inference") == {"task": 1}
    assert not list(folder.iterdir())
    connection.release()


def test_two_readers_never_take_the_same_message(tmp_path):
    import queue
    import threading

    from xrayweb.brokers import AtomicFilesystemTransport

    connection, channel = _channel(AtomicFilesystemTransport, tmp_path)
    for n in range(300):
        channel._put("inference", {"n": n})
    taken: list[int] = []

    def read():
        while True:
            try:
                taken.append(channel._get("inference")["n"])
            except queue.Empty:
                return

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert sorted(taken) == list(range(300))
    connection.release()


def test_filesystem_broker_urls_mean_the_atomic_transport():
    from xrayweb.brokers import AtomicFilesystemTransport

    with app.connection_for_write("filesystem://") as connection:
        assert isinstance(connection.transport, AtomicFilesystemTransport)


def _burst_reader(kind: str, folder: str, total: int, out) -> None:
    """A reader process: takes messages until ``total`` have come (or a minute has gone),
    counting those it read empty."""
    import json
    import queue
    import time

    _connection, channel = _burst_channel(kind, folder)
    got = empty = 0
    deadline = time.monotonic() + 60
    while got + empty < total and time.monotonic() < deadline:
        try:
            channel._get("inference")
            got += 1
        except queue.Empty:
            pass
        except json.JSONDecodeError:
            empty += 1
    out.put((got, empty))


def _burst_channel(kind: str, folder):
    from kombu.transport import filesystem

    from xrayweb.brokers import AtomicFilesystemTransport

    transport = AtomicFilesystemTransport if kind == "atomic" else filesystem.Transport
    return _channel(transport, Path(folder))


def _burst(kind: str, folder: Path, *, writers: int = 8, each: int = 500) -> tuple[int, int]:
    """8 writer threads in one process (as the web server's threads publish) put 4,000
    messages while 2 reader processes take them: (read whole, read empty)."""
    import multiprocessing
    import threading

    out = multiprocessing.Queue()
    total = writers * each
    readers = [
        multiprocessing.Process(target=_burst_reader, args=(kind, str(folder), total // 2, out))
        for _ in range(2)
    ]
    for reader in readers:
        reader.start()

    def write() -> None:
        connection, channel = _burst_channel(kind, folder)
        for n in range(each):
            channel._put("inference", {"n": n, "body": "x" * 2000})
        connection.release()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [out.get(timeout=120) for _ in readers]
    for reader in readers:
        reader.join(timeout=30)
    return sum(r[0] for r in results), sum(r[1] for r in results)


def test_a_burst_of_writers_and_readers_loses_nothing(tmp_path):
    """Run by hand on kombu's own channel (``_burst("kombu", folder)``), the same burst read
    8 or 9 of the 4,000 messages empty, and lost them, in each of 4 runs here; in a run inside
    make test it lost none, so that side is not a test (the race is timing; the held-writer
    test above reproduces it every time)."""
    assert _burst("atomic", tmp_path) == (4000, 0)
