"""Recording what a model said about a batch of studies, with the assessment that goes
with it. Torch-free: the worker passes plain results in."""

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record_studies
from xrayweb.inference.conformal import set_size
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.inference.signals import predictions_recorded
from xrayweb.studies.dicom import scope_warnings
from xrayweb.studies.models import Study, assessability_effective

LOW_CONFIDENCE_FLAG = "read with care: low confidence"


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
                feature_distance=assessment["scores"].get("feature_distance"),
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
