"""The embedded broker under the burst of tests/xrayweb/dicomnet/test_end_to_end.py (10
threads each uploading a film over HTTP and storing one over DICOM at once, every result's
delivery retrying against a closed port; a real worker and listener; SQLite), once per
broker, in one run:

- atomic: this project's filesystem transport (xrayweb/brokers.py), the default;
- kombu: kombu's own filesystem transport (celery/kombu#1551);
- sqlalchemy: kombu's SQLAlchemy transport on a SQLite file of its own.

    python -m tests.bench.broker_burst [--repeat 2] [--json out.json]

Reports, per broker, the seconds until the 20 films were sent, until all 20 studies were
predicted, and until all 20 deliveries had given up, each as a ratio to "atomic"."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROKERS = ("atomic", "kombu", "sqlalchemy")
FIGURES = ("sent_s", "studies_done_s", "deliveries_done_s")


def run_once(broker: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "timings.json"
        env = os.environ | {
            "BURST_BROKER": broker,
            "BURST_TIMINGS": str(out),
            # The embedded default: SQLite, whatever the shell exports.
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "TEST_REDIS_URL": "",
            "CELERY_BROKER_URL": "",
        }
        done = subprocess.run(
            [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "tests/xrayweb/dicomnet/test_end_to_end.py", "-k", "burst",
            ],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0 or not out.exists():
            return {"failed": (done.stdout + done.stderr)[-2000:]}
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = {broker: [] for broker in BROKERS}
    for _ in range(args.repeat):  # interleaved, so that a slow spell hits every broker
        for broker in BROKERS:
            result = run_once(broker)
            runs[broker].append(result)
            print(broker, result if "failed" not in result else "FAILED", flush=True)
    medians = {}
    for broker, results in runs.items():
        ok = [r for r in results if "failed" not in r]
        medians[broker] = {f: statistics.median(r[f] for r in ok) if ok else None for f in FIGURES}
        medians[broker]["failed_runs"] = len(results) - len(ok)
    base = medians["atomic"]
    print(f"\n{'broker':<11}" + "".join(f"{f:>22}" for f in FIGURES) + "  failed runs")
    for broker, figures in medians.items():
        cells = []
        for f in FIGURES:
            if figures[f] is None or base[f] is None:
                cells.append(f"{'-':>22}")
            else:
                cells.append(f"{figures[f]:>10.1f} ({figures[f] / base[f]:.2f}x)".rjust(22))
        print(f"{broker:<11}" + "".join(cells) + f"  {figures['failed_runs']}/{args.repeat}")
    if args.json:
        args.json.write_text(json.dumps({"medians": medians, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
