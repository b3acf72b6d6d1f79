"""Fault tests: real PostgreSQL, a Redis of the test's own (on its own port), and real worker
processes. `make test` runs them in its PostgreSQL pass."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import worker_argv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def require_postgresql(db):
    if connection.vendor != "postgresql":
        pytest.fail(
            "the fault tests need PostgreSQL: DATABASE_URL=postgres://postgres@127.0.0.1:5432/"
            "xrayweb pytest tests/faults (make test does this)"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server the test may stop and start; the machine's Redis is untouched."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.tmp = tmp
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def point_app_at(url: str) -> None:
    from xrayweb.celery import app

    app.conf.CELERY_BROKER_URL = url
    app.conf.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def redis_server(tmp_path, test_broker):
    server = RedisServer(tmp_path)
    server.start()
    point_app_at(server.url)
    yield server
    server.stop()
    test_broker.use()


@pytest.fixture
def workers(redis_server, settings, tmp_path):
    """start(name, fault="", pool="solo", **env) -> a running worker process on this test's
    DB and Redis. With pool="prefork" (one child), a child that dies is replaced and its task
    requeued, as in production."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    procs = []

    def start(name: str, fault: str = "", pool: str = "solo", **extra) -> subprocess.Popen:
        env = os.environ | {
            "DATABASE_URL": url,
            "REDIS_URL": redis_server.url,
            "CELERY_BROKER_URL": "",
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "XRAYWEB_DATA_DIR": str(tmp_path / f"data-{name}"),
            "XRAYWEB_FAULT": fault,
            "INFERENCE_STUDIES_PER_TASK": "1",
            "INFERENCE_RETRY_BACKOFF": "0.2",
            **{k: str(v) for k, v in extra.items()},
        }
        log = (tmp_path / f"{name}.log").open("w")
        proc = subprocess.Popen(
            worker_argv(
                "--pool",
                pool,
                *(["--concurrency", "1"] if pool == "prefork" else []),
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                module="tests.faults.worker",
            ),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc.log_path = tmp_path / f"{name}.log"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def wait_until(predicate, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
