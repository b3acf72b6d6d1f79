from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.studies.models import Study


def prediction_current(*, study: Study) -> Prediction | None:
    """The study's current prediction: the one the worker recorded last (any model version).
    The worklist, review page, reviews and audit all use this one."""
    if study.current_prediction_id is None:
        return None
    return Prediction.objects.select_related("model_version").get(pk=study.current_prediction_id)


def model_version_list():
    return ModelVersion.objects.select_related("created_by")


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
