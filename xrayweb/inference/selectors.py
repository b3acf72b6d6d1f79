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
