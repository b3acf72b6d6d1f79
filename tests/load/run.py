"""Load benchmark: a `make run`-style stack (runserver + one Celery worker, SQLite, the
filesystem broker, the shipped model) in a throwaway data folder, 20 locust users for a
minute, then the inference queue drained and its rate compared with classifier.bench run on
the same machine in the same run.  make bench-load  [LOAD_USERS=20 LOAD_SECONDS=60]"""

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def _counts(env) -> dict:
    out = subprocess.run(
        [PY, "manage.py", "status", "--json"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    return json.loads(out.stdout).get("studies", {})


BURST = int(os.environ.get("LOAD_BURST", 48))


def _pending(env) -> int:
    counts = _counts(env)
    return counts.get("queued", 0) + counts.get("running", 0)


def _burst(host: str, n: int) -> None:
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
            data={"patient_id": f"BURST-{i}", "accession": f"BURST-{i}"},
        )
        response.raise_for_status()


def main() -> int:
    users = int(os.environ.get("LOAD_USERS", 20))
    seconds = int(os.environ.get("LOAD_SECONDS", 60))
    port = int(os.environ.get("LOAD_PORT", 8766))
    data = Path(tempfile.mkdtemp(prefix="xrayweb-load-"))
    env = os.environ | {
        "XRAYWEB_DATA_DIR": str(data),
        "DEMO_PASSWORD": "xrayweb-demo",
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "DEBUG": "0",
    }
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
        subprocess.Popen(
            worker_argv("--pool", "solo"),
            cwd=ROOT,
            env=env,
            stdout=(data / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
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
        while _pending(env):  # what the load left queued
            time.sleep(1)
        # Then a burst bigger than the worker can take at once, timed until it has drained.
        burst_start = time.monotonic()
        _burst(f"http://127.0.0.1:{port}", BURST)
        while _pending(env):
            time.sleep(0.5)
        drain = time.monotonic() - burst_start
        counts = _counts(env)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    bench_json = data / "bench.json"
    subprocess.run(
        [
            PY,
            "-m",
            "classifier.bench",
            "--bundle",
            "classifier/models/default.safetensors",
            "--images",
            "16",
            "--repeats",
            "1",
            "--json",
            str(bench_json),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    bench = json.loads(bench_json.read_text())
    rows = {r["Name"]: r for r in csv.DictReader((data / "load_stats.csv").open())}
    total = rows["Aggregated"]
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    studies = sum(counts.values())
    print(f"{users} users for {seconds} s against runserver + 1 worker ({data})")
    print(f"{'endpoint':<34}{'requests':>9}{'fails':>7}{'p50 ms':>8}{'p95 ms':>8}")
    for name, r in rows.items():
        print(f"{name:<34}{r['Request Count']:>9}{r['Failure Count']:>7}{r['50%']:>8}{r['95%']:>8}")
    print(
        f"requests/s={requests / seconds:.1f} error_ratio={failures / max(requests, 1):.4f} "
        f"p50_ms={total['50%']} p95_ms={total['95%']}"
    )
    rate = BURST / drain
    print(
        f"studies={studies} {counts}; a burst of {BURST} uploads drained in {drain:.1f} s: "
        f"{rate:.2f} studies/s by 1 worker (uploads included)"
    )
    print(
        f"classifier.bench, same machine and run, batch {bench['batch']}: "
        f"{bench['cam_ips']:.2f} images/s predicted for 1 worker; "
        f"drain/bench = {rate / bench['cam_ips']:.2f}"
    )
    print(f"total_s={time.monotonic() - started:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
