"""Load benchmark: a `make run`-style stack (runserver + one Celery worker, SQLite, the
filesystem broker, the shipped model) in a throwaway data folder, 20 locust users for a
minute. Then the queue drain: with the warm worker paused, a burst of uploads fills the queue;
the worker is resumed and timed until the queue is empty, and classifier.bench's rate for one
worker is measured right after, in the same run; three times.
  make bench-load  [LOAD_USERS=20 LOAD_SECONDS=60 LOAD_BURST=48 LOAD_DRAINS=3]"""

import csv
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from tests.conftest import worker_argv

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def _run(*args, env):
    subprocess.run([PY, *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer")


class Stack:
    """Where the load runs: the embedded default (SQLite file, filesystem broker), or, with
    LOAD_STACK=production, a throwaway PostgreSQL database and the machine's Redis under a
    key prefix of the run's own."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.production = os.environ.get("LOAD_STACK", "embedded") == "production"
        self.pg_url = os.environ.get("LOAD_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        self.database = f"xrayweb_load_{uuid.uuid4().hex[:8]}"
        self.prefix = f"xrayweb-load-{uuid.uuid4().hex[:8]}:"
        redis_url = os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/14")
        if self.production:
            self._admin(f'CREATE DATABASE "{self.database}"')
            self.env = {
                "DATABASE_URL": self.pg_url.rsplit("/", 1)[0] + f"/{self.database}",
                "REDIS_URL": redis_url,
                "REDIS_KEY_PREFIX": self.prefix,
            }
        else:
            self.env = {"DATABASE_URL": "", "REDIS_URL": ""}
        self.name = "PostgreSQL + Redis" if self.production else "SQLite + filesystem broker"

    def _admin(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.pg_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    def counts(self) -> dict:
        """Studies per status, read straight from the database: polling through `manage.py
        status` started a Django process every half second and took a core from the worker."""
        sql = "SELECT status, COUNT(*) FROM studies_study GROUP BY status"
        if self.production:
            import psycopg2

            conn = psycopg2.connect(self.env["DATABASE_URL"])
            with conn, conn.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall()
            conn.close()
            return dict(rows)
        db = f"file:{self.data / 'db.sqlite3'}?mode=ro"
        with sqlite3.connect(db, uri=True, timeout=30) as conn:
            return dict(conn.execute(sql).fetchall())

    def drop(self) -> None:
        if not self.production:
            return
        import redis

        client = redis.Redis.from_url(self.env["REDIS_URL"])
        for key in client.scan_iter(match=self.prefix + "*"):
            client.delete(key)
        self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


BURST = int(os.environ.get("LOAD_BURST", 48))
DRAINS = int(os.environ.get("LOAD_DRAINS", 3))
# Solo workers (`make run` starts one), the cores shared among them (INFERENCE_THREADS).
WORKERS = int(os.environ.get("LOAD_WORKERS", 1))


def _pending(stack: Stack) -> int:
    counts = stack.counts()
    return counts.get("queued", 0) + counts.get("running", 0)


def _wait_drained(stack: Stack, poll: float) -> float:
    """Seconds until no study is queued or running."""
    start = time.monotonic()
    while _pending(stack):
        time.sleep(poll)
    return time.monotonic() - start


def _burst(host: str, n: int, offset: int = 0) -> None:
    import requests  # locust's dependency

    samples = sorted((ROOT / "tests/data/cxr_sample/images").glob("*.jpg"))
    token = requests.post(
        f"{host}/api/auth/token/", json={"username": "staff", "password": "xrayweb-demo"}
    ).json()["token"]
    for i in range(n):
        path = samples[i % len(samples)]
        response = requests.post(
            f"{host}/api/studies/",
            headers={"Authorization": f"Token {token}"},
            files={"image": (path.name, path.read_bytes(), "image/jpeg")},
            data={"patient_id": f"BURST-{offset + i}", "accession": f"BURST-{offset + i}"},
        )
        response.raise_for_status()


BENCH_BATCH = 8


def _bench_rate():
    """classifier.bench's variant (b), the rate it predicts for one worker: the shipped
    bundle with its lung mask (as the worker runs it), Predictor.predict with Grad-CAM at batch
    8 on the sample images, median of 3."""
    from classifier import DEFAULT_BUNDLE
    from classifier.bench import load_images, make_predictor, time_per_image
    from classifier.bundle import load_bundle_members, load_segmenter
    from classifier.device import resolve_device

    device = resolve_device("cpu")
    meta, models = load_bundle_members(DEFAULT_BUNDLE)
    predictor = make_predictor(
        meta,
        models,
        device,
        segmenter=load_segmenter(DEFAULT_BUNDLE),
        batch_size=BENCH_BATCH,
        precision="auto",
    )
    images = load_images(32, meta.input_size)
    return lambda: 1.0 / time_per_image({"b": predictor.predict}, images, device, repeats=3)["b"]


def main() -> int:
    users = int(os.environ.get("LOAD_USERS", 20))
    seconds = int(os.environ.get("LOAD_SECONDS", 60))
    port = int(os.environ.get("LOAD_PORT", 8766))
    data = Path(tempfile.mkdtemp(prefix="xrayweb-load-"))
    stack = Stack(data)
    env = (
        os.environ
        | stack.env
        | {
            "XRAYWEB_DATA_DIR": str(data),
            "INFERENCE_THREADS": str(max(1, (os.cpu_count() or 1) // WORKERS)),
            "DEMO_PASSWORD": "xrayweb-demo",
            "DEBUG": "0",
            # Every simulated user signs in as "staff" or "radiologist", a token each.
            "API_TOKENS_PER_USER": str(users + 10),
        }
    )
    _run("manage.py", "migrate", "--noinput", "-v0", env=env)
    _run("manage.py", "demo_users", env=env)
    _run("manage.py", "ensure_model", env=env)
    procs = [
        subprocess.Popen(
            [PY, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ),
    ] + [
        subprocess.Popen(
            worker_argv("--pool", "solo", "--hostname", f"worker{k}@%h"),
            cwd=ROOT,
            env=env,
            stdout=(data / f"worker{k}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for k in range(WORKERS)
    ]
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        started = time.monotonic()
        subprocess.run(
            [
                PY,
                "-m",
                "locust",
                "-f",
                str(ROOT / "tests/load/locustfile.py"),
                "--headless",
                "-u",
                str(users),
                "-r",
                str(max(1, users // 5)),
                "-t",
                f"{seconds}s",
                "--host",
                f"http://127.0.0.1:{port}",
                "--csv",
                str(data / "load"),
                "--only-summary",
            ],
            cwd=ROOT,
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_drained(stack, 1.0)  # what the load left queued
        # The queue drain: the warm worker (model loaded, oneDNN primed by the load phase) is
        # paused while a burst bigger than one task's batch is uploaded, so the queue holds
        # the whole burst; then it is resumed and timed until the queue is empty. The upload
        # rate of runserver is timed separately and does not bound the drain.
        workers = procs[1:]
        bench = _bench_rate()
        drains, benches, uploads = [], [], 0.0
        # This machine's speed moves by tens of percent from minute to minute, so each drain is
        # paired with classifier.bench's rate measured right after it, while the stack idles.
        for _ in range(DRAINS):
            for worker in workers:
                os.killpg(worker.pid, signal.SIGSTOP)
            uploads_start = time.monotonic()
            _burst(f"http://127.0.0.1:{port}", BURST, offset=len(drains) * BURST)
            uploads = time.monotonic() - uploads_start
            for worker in workers:
                os.killpg(worker.pid, signal.SIGCONT)
            drains.append(BURST / _wait_drained(stack, 0.05))
            benches.append(bench())
        counts = stack.counts()
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        stack.drop()
    rows = {r["Name"]: r for r in csv.DictReader((data / "load_stats.csv").open())}
    total = rows["Aggregated"]
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    studies = sum(counts.values())
    print(
        f"{users} users for {seconds} s against runserver + {WORKERS} worker(s), "
        f"{stack.name} ({data})"
    )
    print(f"{'endpoint':<34}{'requests':>9}{'fails':>7}{'p50 ms':>8}{'p95 ms':>8}")
    for name, r in rows.items():
        print(f"{name:<34}{r['Request Count']:>9}{r['Failure Count']:>7}{r['50%']:>8}{r['95%']:>8}")
    print(
        f"requests/s={requests / seconds:.1f} error_ratio={failures / max(requests, 1):.4f} "
        f"p50_ms={total['50%']} p95_ms={total['95%']}"
    )
    ratios = [d / b for d, b in zip(drains, benches, strict=True)]
    print(
        f"studies={studies} {counts}; {BURST} uploads in {uploads:.1f} s "
        f"({BURST / uploads:.1f}/s, one client) while the worker was paused"
    )
    print(f"{'drain':>6}{'studies/s':>11}{'bench images/s':>16}{'drain/bench':>13}")
    for k, (d, b, r) in enumerate(zip(drains, benches, ratios, strict=True), 1):
        print(f"{k:>6}{d:>11.2f}{b:>16.2f}{r:>13.2f}")
    print(
        f"median drain {statistics.median(drains):.2f} studies/s by {WORKERS} worker(s); "
        f"classifier.bench (b), batch {BENCH_BATCH}: median {statistics.median(benches):.2f} "
        f"images/s; drain/bench median {statistics.median(ratios):.2f}"
    )
    print(f"total_s={time.monotonic() - started:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
