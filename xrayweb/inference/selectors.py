from xrayweb.errors import ApplicationError
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.studies.models import Overrule, Study
from xrayweb.studies.services.exports import study_overlay_dicom


def prediction_current(*, study: Study) -> Prediction | None:
    """The study's current prediction: the one the worker recorded last (any model version).
    The worklist, review page, reviews and audit all use this one."""
    if study.current_prediction_id is None:
        return None
    return Prediction.objects.select_related("model_version").get(pk=study.current_prediction_id)


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def study_assessment(*, study: Study) -> dict | None:
    """The study's assessment as the API and pages show it: the current prediction's stored
    assessment, the latest final reading's overrule (None without one) and the effective
    state. None while the study has neither a prediction nor an overrule."""
    prediction = study.current_prediction
    if prediction is None and not study.assessability_overrule:
        return None
    stored = prediction.assessment if prediction is not None else {}
    return {
        "assessable": prediction.assessable if prediction is not None else None,
        "reasons": list(stored.get("reasons", [])),
        "scores": dict(stored.get("scores", {})),
        "checked_by": stored.get("checked_by") or None,
        "flags": list(stored.get("flags", [])),
        "overruled": study.assessability_overrule or None,
        "state": study.assessability,
    }


def studies_gate_overrules() -> dict[str, list[Study]]:
    """Where radiologists overruled the gate, by the latest final reading of each study, for
    retrain (oldest first, each with its current prediction loaded):

    - "assessable": the current prediction's gate refused the study and a radiologist read it
      after all (the gate was wrong);
    - "not_diagnostic": a radiologist found the film not diagnostic, whatever the gate said
      (keep them out of training; those the gate passed are its misses)."""
    qs = Study.objects.select_related("current_prediction__model_version").order_by(
        "created_at", "id"
    )
    return {
        "assessable": list(
            qs.filter(
                assessability_overrule=Overrule.ASSESSABLE, current_prediction__assessable=False
            )
        ),
        "not_diagnostic": list(qs.filter(assessability_overrule=Overrule.NOT_DIAGNOSTIC)),
    }


def prediction_overlay_dicom(*, study: Study) -> tuple[bytes, Prediction]:
    """The current prediction's fused heatmap over the X-ray, as a Secondary Capture in the
    source study (keyed by the prediction, so the same overlay keeps its UIDs), and that
    prediction. 404 while the study has no heatmap."""
    prediction = study.current_prediction
    if prediction is None or not prediction.heatmaps.get("fused"):
        raise ApplicationError(f"Study {study.pk} has no heatmap yet.", status=404)
    data = study_overlay_dicom(
        study=study, heatmap_path=prediction.heatmaps["fused"], key=f"prediction-{prediction.pk}"
    )
    return data, prediction
