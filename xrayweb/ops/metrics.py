"""Prometheus metrics at /metrics (issue 29), with prometheus-client.

Two kinds:
- **Requests**, counted as they happen by ``RequestMetricsMiddleware`` in each web process
  (``xrayweb_http_requests_total`` by method and status class, and a latency histogram).
  Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR to an empty folder
  shared by them: prometheus-client then sums the processes at each scrape.
- **The application's state**, read from the database and the broker at each scrape by
  ``StateCollector``, so every web process answers the same: queue depth per Celery queue
  and the oldest waiting study's age, predictions per class and model version, gate refusals
  per reason, prediction latency, delivery failures, and the audit chains' last verification.
  The drift monitor's series join them (xrayweb/inference/drift.py, when it exists).
"""

import os
import re
import time

from django.db.models import Count, F, Min, Q, Sum
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from xrayweb.audit.models import ChainCheck
from xrayweb.dicomnet.models import Delivery
from xrayweb.inference.models import Prediction
from xrayweb.review.models import DriftStatus
from xrayweb.studies.models import Study

REQUESTS = Counter("xrayweb_http_requests_total", "HTTP requests answered", ["method", "status"])
REQUEST_SECONDS = Histogram(
    "xrayweb_http_request_duration_seconds",
    "Time to answer an HTTP request",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Prediction compute time (Prediction.duration_ms), in seconds.
PREDICTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestMetricsMiddleware:
    """Counts every request but the scrapes themselves."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        if request.path != "/metrics":
            method = request.method if request.method in METHODS else "other"
            REQUESTS.labels(method, f"{response.status_code // 100}xx").inc()
            REQUEST_SECONDS.observe(time.perf_counter() - start)
        return response


def refusal_reason(reason: str) -> str:
    """A gate or header reason as a label: its figures and bracketed details dropped, so that
    "an implausible aspect ratio for a chest film (3.1:1)" is one series, not one per film."""
    reason = re.sub(r"\s*\(.*?\)", "", reason)
    return re.sub(r"\d+(\.\d+)?", "N", reason).strip()[:80] or "unspecified"


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each Celery queue, from the broker; None where it cannot be read."""
    from xrayweb.celery import app

    depths: dict[str, int | None] = {}
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            for queue in app.conf.task_queues:
                try:
                    depths[queue.name] = channel.queue_declare(queue=queue.name).message_count
                except Exception:  # one queue unreadable: say so, report the others
                    depths[queue.name] = None
    except Exception:
        depths = {queue.name: None for queue in app.conf.task_queues}
    return depths


class StateCollector:
    """The application's state, read at each scrape."""

    def collect(self):
        yield from self._queues()
        yield from self._predictions()
        yield from self._deliveries()
        yield from self._audit()
        yield from self._drift()

    def _queues(self):
        depth = GaugeMetricFamily(
            "xrayweb_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        for name, value in queue_depths().items():
            if value is not None:
                depth.add_metric([name], value)
        yield depth
        counts = Study.objects.aggregate(
            queued=Count("pk", filter=Q(status=Study.Status.QUEUED)),
            running=Count("pk", filter=Q(status=Study.Status.RUNNING)),
            oldest=Min("created_at", filter=Q(status=Study.Status.QUEUED)),
        )
        studies = GaugeMetricFamily(
            "xrayweb_studies_waiting", "Studies not yet predicted", labels=["status"]
        )
        studies.add_metric(["queued"], counts["queued"])
        studies.add_metric(["running"], counts["running"])
        yield studies
        oldest = counts["oldest"]
        age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "xrayweb_oldest_queued_study_age_seconds",
            "How long the oldest queued study has waited (0 with none waiting)",
            value=age,
        )

    def _predictions(self):
        per_class = CounterMetricFamily(
            "xrayweb_predictions",
            "Predictions stored, by label and model version",
            labels=["label", "model_version"],
        )
        rows = Prediction.objects.values("label", "model_version__name").annotate(n=Count("pk"))
        for row in rows.order_by("label", "model_version__name"):
            per_class.add_metric([row["label"], row["model_version__name"]], row["n"])
        yield per_class
        refusals = CounterMetricFamily(
            "xrayweb_gate_refusals",
            "Films refused as not assessable, by reason (a film may give several)",
            labels=["reason"],
        )
        counted: dict[str, int] = {}
        for assessment in Prediction.objects.filter(assessable=False).values_list(
            "assessment", flat=True
        ):
            for reason in (assessment or {}).get("reasons") or ["unspecified"]:
                label = refusal_reason(str(reason))
                counted[label] = counted.get(label, 0) + 1
        for label, n in sorted(counted.items()):
            refusals.add_metric([label], n)
        yield refusals
        yield self._latency()

    @staticmethod
    def _latency():
        buckets = {
            f"le_{i}": Count("pk", filter=Q(duration_ms__lte=int(b * 1000)))
            for i, b in enumerate(PREDICTION_BUCKETS)
        }

        agg = Prediction.objects.aggregate(n=Count("pk"), total=Sum("duration_ms"), **buckets)
        histogram = HistogramMetricFamily(
            "xrayweb_prediction_duration_seconds",
            "Compute time of the model call that served a study",
        )
        cumulative = [(str(b), agg[f"le_{i}"]) for i, b in enumerate(PREDICTION_BUCKETS)]
        histogram.add_metric(
            [], [*cumulative, ("+Inf", agg["n"])], sum_value=(agg["total"] or 0) / 1000
        )
        return histogram

    def _deliveries(self):
        by_status = dict(Delivery.objects.values_list("status").annotate(n=Count("pk")).order_by())
        failed = CounterMetricFamily(
            "xrayweb_delivery_failures", "Result deliveries given up after their attempts"
        )
        failed.add_metric([], by_status.get(Delivery.Status.FAILED, 0))
        yield failed
        pending = GaugeMetricFamily(
            "xrayweb_deliveries_pending", "Result deliveries not yet acknowledged"
        )
        pending.add_metric([], by_status.get(Delivery.Status.PENDING, 0))
        yield pending

    def _audit(self):
        check = ChainCheck.objects.order_by("-checked_at", "-id").first()
        when = GaugeMetricFamily(
            "xrayweb_audit_chain_last_verified_timestamp_seconds",
            "When the audit chains were last verified (Unix time; 0: never)",
            value=check.checked_at.timestamp() if check else 0.0,
        )
        yield when
        yield GaugeMetricFamily(
            "xrayweb_audit_chain_ok",
            "1 if the last verification found the chains intact, 0 if broken or never run",
            value=1.0 if check and check.ok else 0.0,
        )

    def _drift(self):
        """The drift monitor's last check (xrayweb.review.monitoring), per site, model
        version and signal: whether its alarm rule fires, and its value over the last films."""
        labels = ["site", "model_version", "signal"]
        firing = GaugeMetricFamily(
            "xrayweb_drift_alarm", "1 while a drift alarm rule fires, else 0", labels=labels
        )
        value = GaugeMetricFamily(
            "xrayweb_drift_value",
            "A drift signal over the last MONITOR_WINDOW_FILMS films (share, distance, mean)",
            labels=labels,
        )
        baseline = GaugeMetricFamily(
            "xrayweb_drift_baseline", "What a drift signal is compared with", labels=labels
        )
        checked = 0.0
        for s in DriftStatus.objects.annotate(version_name=F("model_version__name")):
            key = [s.site, s.version_name, s.signal]
            firing.add_metric(key, 1.0 if s.firing else 0.0)
            if s.value is not None:
                value.add_metric(key, s.value)
            if s.baseline is not None:
                baseline.add_metric(key, s.baseline)
            checked = max(checked, s.checked_at.timestamp())
        yield from (firing, value, baseline)
        yield GaugeMetricFamily(
            "xrayweb_drift_last_check_timestamp_seconds",
            "When the drift monitor last checked (Unix time; 0: never)",
            value=checked,
        )


def metrics_exposition() -> tuple[bytes, str]:
    """The exposition text of every series, and its content type."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(REQUEST_SECONDS)
    registry.register(StateCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
