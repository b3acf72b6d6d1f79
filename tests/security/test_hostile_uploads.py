"""Every hostile upload gets a 4xx with a clear message, stores nothing, and grows the
process's peak memory by less than 200 MB. Run in a process of its own, so the peak is the
upload path's, not the test session's. (The times are in the README, from
`python -m tests.security.hostile_uploads`; a test asserts no timings.)"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_hostile_uploads_get_a_clear_4xx_store_nothing_and_stay_small():
    out = subprocess.run(
        [sys.executable, "-m", "tests.security.hostile_uploads", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(results) == 13
    for r in results:
        assert 400 <= r["status"] < 500, r
        assert r["detail"] and r["detail"] not in ("Bad request.",), r
        assert r["stored"] == 0, r
        assert r["peak_growth_mb"] < 200, r
