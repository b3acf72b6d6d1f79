"""Prometheus metrics at /metrics (issue 29): who may read them, what the series say, and a real
Prometheus server (Debian's `prometheus`) scraping a running xrayweb, read back through
Prometheus' own HTTP API."""

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.xrayweb.dicomnet.peers import free_port, process_end, wait_until
from xrayweb.accounts.services import api_token_issue
from xrayweb.audit.models import ChainCheck
from xrayweb.dicomnet.models import Delivery, Destination
from xrayweb.ops.metrics import refusal_reason
from xrayweb.studies.models import Study

SCRAPE_TOKEN = "scrape-secret-0123456789"
LATERAL = {"assessable": False, "reasons": ["looks like a lateral view"], "scores": {}}
WIDE = {
    "assessable": False,
    "reasons": ["an implausible aspect ratio for a chest film (3.1:1)"],
    "scores": {},
}


@pytest.fixture
def metrics_settings(settings):
    settings.METRICS_TOKEN = SCRAPE_TOKEN
    return settings


@pytest.fixture
def state(predicted, staff, png):
    """Three predictions (two covid19, one normal), two films refused by the gate, a queued
    study, a delivery given up, one chain check."""
    from xrayweb.studies.services.ingest import study_create

    predicted({"covid19": 0.9})
    predicted({"covid19": 0.8})
    done = predicted({"normal": 0.9})
    predicted({"normal": 0.6}, gate=LATERAL)
    predicted({"normal": 0.6}, gate=WIDE)
    queued = study_create(
        user=staff, patient_id="PQ", accession="AQ", data=png(seed=99), site="", view=""
    )
    Study.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(minutes=7))
    destination = Destination.objects.create(
        name="pacs", kind="cstore", ae_title="PACS", host="127.0.0.1", port=104
    )
    Delivery.objects.create(
        destination=destination,
        study=done,
        kind=Delivery.Kind.MODEL_SR,
        status=Delivery.Status.FAILED,
        attempts=8,
    )
    ChainCheck.objects.create(ok=True, rows={"audit": 3}, via="schedule")


def _series(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_are_for_the_internal_network_the_scrape_token_or_an_admin(
    client, metrics_settings, make_user, db
):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", **outside).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 403
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}", **outside).status_code
        == 200
    )
    admin_token = api_token_issue(user=make_user("admin"))[1]
    staff_token = api_token_issue(user=make_user("staff"))[1]
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=f"Token {admin_token}", **outside).status_code
        == 200
    )
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=f"Token {staff_token}", **outside).status_code
        == 403
    )
    assert client.get("/metrics").status_code == 200  # loopback: the default internal network
    metrics_settings.METRICS_TOKEN = ""  # no token configured: a Bearer header opens nothing
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ", **outside).status_code == 403


def test_the_series_say_what_the_database_holds(client, metrics_settings, state):
    client.get("/accounts/login/")  # one counted request
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    s = _series(response.content.decode())
    per_class = {
        labels: v for (name, labels), v in s.items() if name == "xrayweb_predictions_total"
    }
    assert per_class == {
        (("label", "covid19"), ("model_version", "tiny")): 2,
        (("label", "normal"), ("model_version", "tiny")): 3,
    }
    assert s[("xrayweb_gate_refusals_total", (("reason", "looks like a lateral view"),))] == 1
    wide = refusal_reason("an implausible aspect ratio for a chest film (3.1:1)")
    assert s[("xrayweb_gate_refusals_total", (("reason", wide),))] == 1
    assert s[("xrayweb_studies_waiting", (("status", "queued"),))] == 1
    assert 7 * 60 <= s[("xrayweb_oldest_queued_study_age_seconds", ())] < 8 * 60
    assert s[("xrayweb_prediction_duration_seconds_count", ())] == 5
    assert s[("xrayweb_prediction_duration_seconds_bucket", (("le", "0.05"),))] == 5  # 5 ms each
    assert s[("xrayweb_delivery_failures_total", ())] == 1
    assert s[("xrayweb_audit_chain_ok", ())] == 1
    assert s[("xrayweb_audit_chain_last_verified_timestamp_seconds", ())] > 1.7e9
    assert {labels for (name, labels) in s if name == "xrayweb_queue_depth"} == {
        (("queue", "default"),),
        (("queue", "inference"),),
        (("queue", "training"),),
    }
    assert s[("xrayweb_http_requests_total", (("method", "GET"), ("status", "2xx")))] >= 1


def test_refusal_reasons_are_labels_without_their_figures():
    assert refusal_reason("an implausible aspect ratio for a chest film (3.1:1)") == (
        "an implausible aspect ratio for a chest film"
    )
    assert refusal_reason("looks like a CT slice") == "looks like a CT slice"
    assert refusal_reason("   ") == "unspecified"


@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_scrapes_xrayweb_and_answers_from_its_own_api(
    live_server, metrics_settings, state, tmp_path
):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make test` installs Debian's package")
    port = free_port()
    host = live_server.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: xrayweb\n    metrics_path: /metrics\n"
        f"    authorization:\n      type: Bearer\n      credentials: {SCRAPE_TOKEN}\n"
        f"    static_configs:\n      - targets: ['{host}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def query(expr: str) -> list:
        try:
            body = requests.get(api, params={"query": expr}, timeout=2).json()
        except (requests.RequestException, ValueError):
            return []
        return body.get("data", {}).get("result", [])

    try:
        assert wait_until(lambda: query("xrayweb_predictions_total"), timeout=60), Path(
            log.name
        ).read_text()[-2000:]
        up = query('up{job="xrayweb"}')
        assert [r["value"][1] for r in up] == ["1"]
        covid = query('xrayweb_predictions_total{label="covid19"}')
        assert [(r["metric"]["model_version"], r["value"][1]) for r in covid] == [("tiny", "2")]
        assert query("xrayweb_delivery_failures_total")[0]["value"][1] == "1"
        assert query('xrayweb_studies_waiting{status="queued"}')[0]["value"][1] == "1"
        assert query("xrayweb_audit_chain_ok")[0]["value"][1] == "1"
        assert query("sum(xrayweb_gate_refusals_total)")[0]["value"][1] == "2"
    finally:
        process_end(process)
        log.close()
