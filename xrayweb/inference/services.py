"""Model registry and prediction bookkeeping. Torch-free: imported by the web process."""

import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone

from classifier import BundleError, bundle_sha256, read_metadata
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record, audit_record_studies
from xrayweb.errors import ApplicationError
from xrayweb.inference.conformal import set_size
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.inference.selectors import model_version_active
from xrayweb.inference.signals import predictions_recorded
from xrayweb.studies.dicom import scope_warnings
from xrayweb.studies.models import Study, assessability_effective

LOW_CONFIDENCE_FLAG = "read with care: low confidence"


@transaction.atomic
def model_version_activate(
    *, version: ModelVersion, actor, via: str, ip: str | None = None
) -> ModelVersion:
    """Make ``version`` the one that predicts new studies, and audit who did it through which
    entry point (``via``: api, admin, command, retrain, ensure_model). ``actor`` is None only
    for the system itself (the shipped bundle activated on a fresh install)."""
    previous = model_version_active()
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    version.is_active = True
    version.activated_at = timezone.now()
    version.save(update_fields=["is_active", "activated_at"])
    audit_record(
        actor=actor,
        action=AuditEvent.Action.MODEL_ACTIVATE,
        detail={
            "model_version": version.name,
            "sha256": version.sha256,
            "previous": previous.name if previous else None,
            "via": via,
        },
        ip=ip,
    )
    return version


def model_version_register(
    *,
    bundle_path: Path,
    name: str = "",
    user=None,
    activate: bool = False,
    via: str = "command",
) -> ModelVersion:
    """Register a bundle (idempotent on its hash); metadata is read without torch. A new
    version is audited as registered by ``user`` (None: the system) through ``via``."""
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
            audit_record(
                actor=user,
                action=AuditEvent.Action.MODEL_REGISTER,
                detail={"model_version": version.name, "sha256": sha, "via": via},
            )
        if activate:
            model_version_activate(version=version, actor=user, via=via)
    return version


def model_version_ensure_default(*, bundle_path: Path) -> ModelVersion:
    """Make sure some version is active, registering the shipped bundle if none is.

    An active version whose file is this bundle but whose hash is not (the shipped bundle was
    replaced by an upgrade) could serve no prediction: the new bundle is registered and
    activated in its place; the old version stays in the registry."""
    active = model_version_active()
    path = Path(bundle_path).resolve()
    if active is not None:
        replaced = Path(active.bundle_path).resolve() == path and path.is_file()
        if not replaced or bundle_sha256(path) == active.sha256:
            return active
    return model_version_register(bundle_path=path, name="", activate=True, via="ensure_model")


CRASHED = "the worker stopped while predicting this film"


@transaction.atomic
def studies_recover_crashed(
    *, study_id: int, token: str, lease_seconds: int, max_attempts: int
) -> list[int]:
    """Studies whose last try stopped without finishing: this study "running" past the lease
    (its worker died), or any study still "running" under this task's own claim (the task was
    redelivered with the same id after its worker died, or retried after the database dropped
    before the release).

    Each one with attempts left goes back to "queued", isolated: from now on it is predicted
    alone, so a film that kills the worker cannot take its batch-mates down again. One that
    has had its attempts fails with a reason staff can read, and is never claimed again.
    Returns the ids queued again (the caller gives each a task)."""
    now = timezone.now()
    crashed = Q(
        pk=study_id,
        status=Study.Status.RUNNING,
        status_changed_at__lt=now - timedelta(seconds=lease_seconds),
    )
    if token:
        crashed |= Q(status=Study.Status.RUNNING, claimed_by=token)
    rows = list(
        Study.objects.select_for_update(skip_locked=True)
        .filter(crashed)
        .values_list("pk", "attempts")
    )
    again = [pk for pk, attempts in rows if attempts < max_attempts]
    given_up = [pk for pk, attempts in rows if attempts >= max_attempts]
    Study.objects.filter(pk__in=again).update(
        status=Study.Status.QUEUED,
        isolated=True,
        failure_reason=f"retrying alone after: {CRASHED}",
        status_changed_at=now,
    )
    if given_up:
        reason = (
            f"{CRASHED}, {max_attempts} times; it will not be tried again. The file may be "
            "one the model cannot process: check it, or upload it again."
        )
        Study.objects.filter(pk__in=given_up).update(
            status=Study.Status.FAILED, failure_reason=reason, status_changed_at=now
        )
        audit_record_studies(
            actor=None,
            action=AuditEvent.Action.STUDY_FAILED,
            details={pk: {"reason": reason[:200]} for pk in given_up},
        )
    return again


def studies_claim(*, study_id: int, limit: int, token: str = "") -> list[Study]:
    """Atomically mark this task's study and other queued ones running, ``limit`` in all.

    The claim locks the rows it takes (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; on
    SQLite the transaction holds the database's write lock from BEGIN), so two workers never
    take the same study and neither waits for the other. An isolated study (one whose batch
    crashed, ``studies_recover_crashed``) is claimed only by its own task, and alone. A study
    left "running" is never claimed here: ``studies_recover_crashed`` decides first.
    """
    now = timezone.now()
    queued = Study.objects.select_for_update(skip_locked=True).filter(status=Study.Status.QUEUED)
    with transaction.atomic():
        own = queued.filter(pk=study_id).values_list("isolated", flat=True).first()
        if own:  # isolated: alone
            ids = [study_id]
        else:
            # A task whose own study an earlier batch took still fills a whole batch with the
            # oldest queued studies: with a burst queued, every batch stays full.
            ids = list(
                queued.filter(isolated=False)
                .order_by(Case(When(pk=study_id, then=0), default=1), "created_at", "id")
                .values_list("pk", flat=True)[:limit]
            )
        if ids:
            Study.objects.filter(pk__in=ids).update(
                status=Study.Status.RUNNING,
                status_changed_at=now,
                failure_reason="",
                attempts=F("attempts") + 1,
                claimed_by=token,
            )
    return list(Study.objects.filter(pk__in=ids).order_by("created_at", "id"))


@transaction.atomic
def study_mark_failed(*, study_id: int, reason: str) -> None:
    failed = (
        Study.objects.filter(pk=study_id)
        .exclude(status=Study.Status.DONE)
        .update(
            status=Study.Status.FAILED,
            failure_reason=reason[:2000],
            status_changed_at=timezone.now(),
        )
    )
    if failed:
        audit_record_studies(
            actor=None,
            action=AuditEvent.Action.STUDY_FAILED,
            details={study_id: {"reason": reason[:200]}},
        )


@transaction.atomic
def studies_release(
    *, study_ids: list[int], reason: str, max_attempts: int, isolate: bool = False
) -> None:
    """After a transient failure: back to "queued" for another try, or "failed" with the
    reason once a study has had ``max_attempts`` claims. Done studies are left alone.
    ``isolate``: the worker died, so each is tried alone from now on (``studies_claim``)."""
    now = timezone.now()
    pending = Study.objects.filter(pk__in=study_ids).exclude(status=Study.Status.DONE)
    pending.filter(attempts__lt=max_attempts).update(
        status=Study.Status.QUEUED,
        **({"isolated": True} if isolate else {}),
        failure_reason=f"retrying after: {reason}"[:2000],
        status_changed_at=now,
    )
    exhausted = pending.filter(attempts__gte=max_attempts)
    given_up = list(exhausted.values_list("pk", flat=True))
    exhausted.update(
        status=Study.Status.FAILED,
        failure_reason=f"gave up after {max_attempts} attempts: {reason}"[:2000],
        status_changed_at=now,
    )
    detail = {"reason": f"gave up after {max_attempts} attempts: {reason}"[:200]}
    audit_record_studies(
        actor=None,
        action=AuditEvent.Action.STUDY_FAILED,
        details={pk: detail for pk in given_up},
    )


def studies_reconcile(*, queued_seconds: int, lease_seconds: int, max_attempts: int) -> dict:
    """Studies stuck past a deadline: "queued" with no task running them (the message was
    lost, or the broker was down at upload), or "running" past the lease (the worker died).
    Running ones go back to queued (or fail after ``max_attempts``). Returns how many went
    back, and the ids of the queued ones that are overdue: the caller gives each a fresh task
    (claims are exclusive, so a duplicate task is harmless)."""
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
        isolate=True,
    )
    overdue = list(
        Study.objects.filter(status=Study.Status.QUEUED)
        .filter(
            Q(pk__in=stale_running)
            | Q(status_changed_at__lt=now - timedelta(seconds=queued_seconds))
        )
        .values_list("pk", flat=True)
    )
    return {"requeued_running": len(stale_running), "overdue": overdue}


@dataclass(frozen=True)
class PredictionResult:
    """What the worker learned about one study, ready to store."""

    study: Study
    label: str
    probabilities: dict[str, float]
    member_probabilities: dict[str, dict[str, float]]
    heatmaps: dict[str, str]
    lung_mask: str = ""  # media path; "" without a segmenter
    cam_lung_fraction: float | None = None
    # The gate's verdict, classifier.gate.Assessment.to_dict(): {"assessable", "reasons",
    # "scores"}. Empty when the caller ran no gate: the DICOM header alone then decides.
    assessment: dict = field(default_factory=dict)
    # Conformal prediction sets, classifier Prediction.prediction_sets: {"0.90": [classes, most
    # probable first], …}; empty for a bundle without conformal calibration.
    prediction_sets: dict[str, list[str]] = field(default_factory=dict)


def _score(value) -> float | None:
    # numpy scalars are not JSON; NaN and infinity are not valid JSON either.
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def assessment_build(*, study: Study, gate: dict, confidence: float, checked_by: str) -> dict:
    """The assessment stored with a prediction. The DICOM header's scope (a modality other
    than a projection radiograph, a lateral view, a body part other than the chest) blocks the
    diagnosis like the gate does, and its reasons come first. Low ensemble confidence is a
    flag ("read with care"), never a refusal."""
    scope = scope_warnings(
        {"modality": study.modality, "view": study.view, "body_part": study.body_part}
    )
    gate_assessable = bool(gate.get("assessable", True))
    reasons = [str(r) for r in gate.get("reasons") or []]
    if not gate_assessable and not reasons:
        reasons = ["refused by the gate (no reason given)"]
    return {
        "assessable": gate_assessable and not scope,
        "reasons": scope + reasons,
        "scores": {str(k): _score(v) for k, v in (gate.get("scores") or {}).items()},
        "checked_by": checked_by,
        "flags": [LOW_CONFIDENCE_FLAG] if confidence < settings.REVIEW_LOW_CONFIDENCE else [],
    }


@transaction.atomic
def predictions_record(
    *,
    version: ModelVersion,
    results: list[PredictionResult],
    cam_layers: dict[str, str],
    duration_ms: int,
) -> list[Prediction]:
    """Store a batch's predictions with their assessments and conformal sets, make each its
    study's current one and mark the studies done (a study that is not assessable too: its
    output is kept for the audit): one upsert and one update for the whole batch, all or
    nothing. A redelivered task overwrites its own row (one per study and model version), never
    adds a second; the heatmap and mask files of an overwritten row are deleted once the new
    row is committed."""
    now = timezone.now()
    overwritten = Prediction.objects.filter(
        model_version=version, study__in=[r.study for r in results]
    ).values_list("heatmaps", "lung_mask")
    stale = {path for maps, mask in overwritten for path in (*maps.values(), mask) if path} - {
        path for r in results for path in (*r.heatmaps.values(), r.lung_mask)
    }
    if stale:
        transaction.on_commit(lambda: [default_storage.delete(path) for path in stale])
    predictions = []
    for r in results:
        member_labels = {n: max(p, key=p.get) for n, p in r.member_probabilities.items() if p}
        confidence = float(r.probabilities.get(r.label, 0.0))
        assessment = assessment_build(
            study=r.study, gate=r.assessment, confidence=confidence, checked_by=version.name
        )
        sets = {
            str(level): [str(c) for c in classes] for level, classes in r.prediction_sets.items()
        }
        predictions.append(
            Prediction(
                study=r.study,
                model_version=version,
                bundle_sha256=version.sha256,
                label=r.label,
                probabilities=r.probabilities,
                member_probabilities=r.member_probabilities,
                confidence=confidence,
                members_agree=set(member_labels.values()) == {r.label} if member_labels else None,
                heatmaps=r.heatmaps,
                lung_mask=r.lung_mask,
                cam_lung_fraction=r.cam_lung_fraction,
                assessment=assessment,
                assessable=assessment["assessable"],
                prediction_sets=sets,
                set_size=set_size(prediction_sets=sets, assessable=assessment["assessable"]),
                cam_layers=cam_layers,
                duration_ms=duration_ms,
                batch_size=len(results),
                latency_ms=max(0, round((now - r.study.created_at).total_seconds() * 1000)),
            )
        )
    Prediction.objects.bulk_create(
        predictions,
        update_conflicts=True,
        unique_fields=["study", "model_version"],
        update_fields=[
            f.name
            for f in Prediction._meta.concrete_fields
            if f.name not in {"id", "study", "model_version", "created_at"}
        ],
    )
    # A radiologist's overrule is about the film, not the model: it outlives a new prediction.
    done = [
        Study(
            pk=p.study_id,
            status=Study.Status.DONE,
            failure_reason="",
            status_changed_at=now,
            current_prediction=p,
            assessability=assessability_effective(
                gate=p.assessable, overrule=r.study.assessability_overrule
            ),
        )
        for p, r in zip(predictions, results, strict=True)
    ]
    Study.objects.bulk_update(
        done,
        ["status", "failure_reason", "status_changed_at", "current_prediction", "assessability"],
    )
    audit_record_studies(
        actor=None,
        action=AuditEvent.Action.PREDICTION_RECORD,
        details={
            p.study_id: {
                "prediction": p.pk,
                "model_version": p.model_version_id,
                "assessable": p.assessable,
                "set_size": p.set_size,
            }
            for p in predictions
        },
    )
    ids = [p.pk for p in predictions]
    transaction.on_commit(lambda: predictions_recorded.send(sender=Prediction, prediction_ids=ids))
    return predictions


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
