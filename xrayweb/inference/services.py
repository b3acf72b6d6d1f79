"""Model registry and prediction bookkeeping. Torch-free: imported by the web process."""

from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from classifier import BundleError, bundle_sha256, read_metadata
from xrayweb.errors import ApplicationError
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.studies.models import Study


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    version.is_active = True
    version.activated_at = timezone.now()
    version.save(update_fields=["is_active", "activated_at"])
    return version


def model_version_register(
    *, bundle_path: Path, name: str = "", user=None, activate: bool = False
) -> ModelVersion:
    """Register a bundle (idempotent on its hash); metadata is read without torch."""
    path = Path(bundle_path).resolve()
    try:
        meta = read_metadata(path)
        sha = bundle_sha256(path)
    except (BundleError, OSError) as exc:
        raise ApplicationError(f"cannot register {path}: {exc}") from exc
    with transaction.atomic():
        version = ModelVersion.objects.filter(sha256=sha).first()
        if version is None:
            version = ModelVersion.objects.create(
                name=name or f"{timezone.now():%Y%m%d-%H%M%S}-{sha[:8]}",
                bundle_path=str(path),
                sha256=sha,
                classes=list(meta.classes),
                members=[m.__dict__ for m in meta.members],
                metrics=meta.metrics,
                training={k: v for k, v in meta.training.items() if k != "history"}
                | {"created_at": meta.created_at},
                created_by=user,
            )
        if activate:
            model_version_activate(version=version)
    return version


def model_version_ensure_default(*, bundle_path: Path) -> ModelVersion:
    """Make sure some version is active, registering the shipped bundle if none is."""
    active = model_version_active()
    if active is not None:
        return active
    return model_version_register(bundle_path=bundle_path, name="", activate=True)


def studies_claim(*, study_id: int, limit: int, lease_seconds: int, token: str = "") -> list[Study]:
    """Atomically mark this task's study and other queued ones running, ``limit`` in all.

    Each claim is a conditional UPDATE, so two workers never take the same study. A study left
    "running" longer than the lease (its worker died) can be claimed again by its own task.
    """
    now = timezone.now()
    claimable = Q(status=Study.Status.QUEUED) | Q(
        status=Study.Status.RUNNING, status_changed_at__lt=now - timedelta(seconds=lease_seconds)
    )
    if token:  # this task's own earlier claim (a retry after the database dropped)
        claimable |= Q(status=Study.Status.RUNNING, claimed_by=token)
    running = {
        "status": Study.Status.RUNNING,
        "status_changed_at": now,
        "failure_reason": "",
        "attempts": F("attempts") + 1,
        "claimed_by": token,
    }
    ids = [study_id] if Study.objects.filter(claimable, pk=study_id).update(**running) else []
    # A task whose own study was taken by an earlier batch still fills a whole batch: with a
    # burst queued, the redundant tasks keep every batch full.
    if limit > len(ids):
        others = (
            Study.objects.filter(status=Study.Status.QUEUED)
            .exclude(pk=study_id)
            .order_by("created_at", "id")
            .values_list("pk", flat=True)[: limit - len(ids)]
        )
        for pk in list(others):
            if Study.objects.filter(pk=pk, status=Study.Status.QUEUED).update(**running):
                ids.append(pk)
    return list(Study.objects.filter(pk__in=ids).order_by("created_at", "id"))


def study_mark_failed(*, study_id: int, reason: str) -> None:
    Study.objects.filter(pk=study_id).exclude(status=Study.Status.DONE).update(
        status=Study.Status.FAILED, failure_reason=reason[:2000], status_changed_at=timezone.now()
    )


def studies_release(*, study_ids: list[int], reason: str, max_attempts: int) -> None:
    """After a transient failure: back to "queued" for another try, or "failed" with the
    reason once a study has had ``max_attempts`` claims. Done studies are left alone."""
    now = timezone.now()
    pending = Study.objects.filter(pk__in=study_ids).exclude(status=Study.Status.DONE)
    pending.filter(attempts__lt=max_attempts).update(
        status=Study.Status.QUEUED,
        failure_reason=f"retrying after: {reason}"[:2000],
        status_changed_at=now,
    )
    pending.filter(attempts__gte=max_attempts).update(
        status=Study.Status.FAILED,
        failure_reason=f"gave up after {max_attempts} attempts: {reason}"[:2000],
        status_changed_at=now,
    )


def studies_reconcile(*, queued_seconds: int, lease_seconds: int, max_attempts: int) -> dict:
    """Studies stuck past a deadline: "queued" with no task running them (the message was
    lost, or the broker was down at upload), or "running" past the lease (the worker died).
    Running ones go back to queued (or fail after ``max_attempts``); every queued one that is
    overdue gets a fresh task. Claims are exclusive, so a duplicate task is harmless."""
    from xrayweb.inference.tasks import study_enqueue

    now = timezone.now()
    stale_running = list(
        Study.objects.filter(
            status=Study.Status.RUNNING,
            status_changed_at__lt=now - timedelta(seconds=lease_seconds),
        ).values_list("pk", flat=True)
    )
    studies_release(
        study_ids=stale_running,
        reason="its worker stopped (lease expired)",
        max_attempts=max_attempts,
    )
    overdue = list(
        Study.objects.filter(status=Study.Status.QUEUED)
        .filter(
            Q(pk__in=stale_running)
            | Q(status_changed_at__lt=now - timedelta(seconds=queued_seconds))
        )
        .values_list("pk", flat=True)
    )
    for pk in overdue:
        study_enqueue(pk)
    return {"requeued_running": len(stale_running), "enqueued": len(overdue)}


@transaction.atomic
def prediction_record(
    *,
    study: Study,
    version: ModelVersion,
    label: str,
    probabilities: dict[str, float],
    member_probabilities: dict[str, dict[str, float]],
    heatmaps: dict[str, str],
    cam_layers: dict[str, str],
    duration_ms: int,
    batch_size: int = 1,
) -> Prediction:
    """Store a prediction, make it the study's current one and mark the study done."""
    member_labels = {name: max(p, key=p.get) for name, p in member_probabilities.items() if p}
    prediction, _ = Prediction.objects.update_or_create(
        study=study,
        model_version=version,
        defaults={
            "bundle_sha256": version.sha256,
            "label": label,
            "probabilities": probabilities,
            "member_probabilities": member_probabilities,
            "confidence": float(probabilities.get(label, 0.0)),
            "members_agree": set(member_labels.values()) == {label} if member_labels else None,
            "heatmaps": heatmaps,
            "cam_layers": cam_layers,
            "duration_ms": duration_ms,
            "batch_size": batch_size,
            "latency_ms": max(0, round((timezone.now() - study.created_at).total_seconds() * 1000)),
        },
    )
    Study.objects.filter(pk=study.pk).update(
        status=Study.Status.DONE,
        failure_reason="",
        status_changed_at=timezone.now(),
        current_prediction=prediction,
    )
    return prediction


def locked_summary(report: dict) -> dict:
    """The figures the promotion gate compares, from an evaluation report."""
    covid = report["per_class"].get("covid19", {})
    return {
        "n": report["n"],
        "accuracy": report["accuracy"],
        "macro_auc": report["macro_auc"],
        "covid19_sensitivity": covid.get("sensitivity"),
        "ece": report.get("ece"),
    }


def promotion_gate(*, candidate: dict, active: dict | None) -> tuple[bool, str]:
    """Promote only if neither locked-set macro AUC nor covid19 sensitivity gets worse."""
    if active is None:
        return True, "no active version to compare with"
    worse = [
        f"{key} {candidate[key]:.3f} < {active[key]:.3f}"
        for key in ("macro_auc", "covid19_sensitivity")
        if active.get(key) is not None
        and (candidate.get(key) is None or candidate[key] < active[key])
    ]
    if worse:
        return False, "worse than the active version on the locked set: " + "; ".join(worse)
    return True, "not worse than the active version on the locked set"
