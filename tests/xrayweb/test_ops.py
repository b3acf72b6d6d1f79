"""Health endpoint: database, broker and active model, each reported; 503 when one is down."""

import io
import re
import subprocess

import pytest
from django.core.management import CommandError, call_command

from xrayweb.inference.models import ModelVersion


def test_healthz_is_200_when_everything_is_up_and_needs_no_login(
    client, active_version, worker_answering
):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["database"]["ok"] and body["broker"]["ok"] and body["model"]["ok"]
    assert body["workers"]["ok"] and body["workers"]["answering"] == 1
    assert body["model"]["name"] == "tiny"
    assert "bundle_path" not in str(body) and "/" not in body["model"]["name"]


def test_healthz_is_503_and_names_the_part_that_is_down(client, active_version, tmp_path):
    ModelVersion.objects.filter(pk=active_version.pk).update(bundle_path=str(tmp_path / "gone"))
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False and body["model"] == {
        "ok": False,
        "name": "tiny",
        "error": "bundle file missing",
    }
    assert body["database"]["ok"] and body["broker"]["ok"]


@pytest.mark.django_db
def test_healthz_reports_a_broker_that_cannot_be_reached(client, settings):
    from xrayweb.celery import app

    saved = app.conf.CELERY_BROKER_URL
    app.conf.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens on port 9
    app._pool = None
    try:
        body = client.get("/healthz").json()
    finally:
        app.conf.CELERY_BROKER_URL = saved
        app._pool = None
    assert body["broker"]["ok"] is False and body["broker"]["error"]
    assert body["model"] == {"ok": False, "error": "no active model version"}


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    import os
    import subprocess
    import sys

    # Browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process; a deployment never does.
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {
        **inherited,
        "DEBUG": "0",
        "HTTPS": "1",
        "SECRET_KEY": "k3x!Q9v#Lp2@Zr7^Wm5&Tn8*Yb4(Hc6)Jd1-Fe0=Gs_Ua+Vo|Iq~Xw" * 2,
        "AUDIT_CHAIN_KEY": "a-chain-key-of-its-own-7Hq2",
        "DEID_SECRET": "a-deid-key-of-its-own-9Vx4",
        "ALLOWED_HOSTS": "xrayweb.example.org",
        "XRAYWEB_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "xrayweb.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _start_in_production(tmp_path, **secrets) -> subprocess.CompletedProcess:
    """``manage.py check`` as production would start, with these secrets (others unset)."""
    import os
    import sys

    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE", "SECRET_KEY", "AUDIT_CHAIN_KEY", "DEID_SECRET")
    }
    env = {
        **inherited,
        "PRODUCTION": "1",
        "ALLOWED_HOSTS": "xrayweb.example.org",
        "XRAYWEB_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "xrayweb.settings",
        **secrets,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True
    )


def test_production_refuses_to_start_with_a_default_missing_or_shared_secret(tmp_path):
    """Issue 27: SECRET_KEY had a public default, and the chain and de-identification keys
    derived from it; nothing refused to start."""
    own = {"SECRET_KEY": "s" * 60, "AUDIT_CHAIN_KEY": "chain-key-1", "DEID_SECRET": "deid-key-2"}
    assert _start_in_production(tmp_path, **own).returncode == 0
    bare = _start_in_production(tmp_path)
    assert bare.returncode != 0
    assert "set SECRET_KEY; set AUDIT_CHAIN_KEY; set DEID_SECRET" in bare.stderr
    default = _start_in_production(
        tmp_path, **{**own, "SECRET_KEY": "insecure-dev-key-set-SECRET_KEY-in-production"}
    )
    assert default.returncode != 0 and "set SECRET_KEY" in default.stderr
    shared = _start_in_production(tmp_path, **{**own, "DEID_SECRET": own["AUDIT_CHAIN_KEY"]})
    assert shared.returncode != 0 and "must differ" in shared.stderr


def test_demo_users_is_refused_in_production_and_leaves_the_admin_alone(make_user, settings):
    """Issue 27: it reset the password of an account named "admin", a superuser."""
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command

    admin = make_user("admin")
    get_user_model().objects.filter(pk=admin.pk).update(username="admin")
    before = get_user_model().objects.get(pk=admin.pk).password
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="refused in production"):
        call_command("demo_users", password="new-password-123")
    assert get_user_model().objects.get(pk=admin.pk).password == before


def test_healthz_does_its_checks_once_per_interval_for_anonymous_callers(
    client, make_user, active_version, mocker, worker_answering
):
    """Issue 27: every anonymous request ran a query and opened a broker connection."""
    from xrayweb.ops import views

    checks = mocker.spy(views, "health_check")
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
    assert checks.call_count == 1
    client.force_login(make_user("admin"))
    assert client.get("/healthz").status_code == 200  # an admin's is fresh
    assert checks.call_count == 2


# Worker heartbeats (issue 27): the embedded worker died under load, and /healthz kept
# saying everything was fine.


def test_healthz_says_no_worker_has_answered_when_none_ever_did(client, active_version):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"]["error"] == "no worker has answered yet"


def test_healthz_says_how_long_no_worker_has_answered(
    client, active_version, worker_answering, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from xrayweb.ops.models import WorkerHeartbeat

    WorkerHeartbeat.objects.update(last_seen=timezone.now() - timedelta(seconds=95))
    body = client.get("/healthz").json()
    assert body["ok"] is False
    # 95 s, or a little more on a slow machine
    assert re.fullmatch(r"no worker has answered for (9[5-9]|1\d\d) s", body["workers"]["error"])
    out = io.StringIO()
    with pytest.raises(CommandError, match="a part is down"):
        call_command("status", stdout=out)
    assert "workers   DOWN" in out.getvalue()
    assert re.search(r"no worker has answered for (9[5-9]|1\d\d) s", out.getvalue())


def test_make_run_starts_a_dead_worker_again(tmp_path):
    """Issue 27: `make run`'s worker died under load and stayed dead. Its supervisor starts
    a command that ends again (here one that dies twice, then stays up until told to stop),
    and passes SIGTERM on."""
    import signal
    import sys
    import time
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "-m xrayweb.ops.supervise -- $(BIN)/celery -A xrayweb worker" in makefile
    runs = tmp_path / "runs"
    child = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(runs)!r})\n"
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        "if len(p.read_text()) < 3: sys.exit(1)  # dies twice\n"
        "time.sleep(600)\n"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "xrayweb.ops.supervise", "--", sys.executable, "-c", child],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (runs.exists() and runs.read_text() == "xxx"):
        assert time.monotonic() < deadline and supervisor.poll() is None
        time.sleep(0.1)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) != 0  # the child was stopped by the signal
    assert supervisor.stderr.read().count("starting it again") == 2
