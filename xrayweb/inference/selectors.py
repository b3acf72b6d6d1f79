from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.studies.models import Study


def prediction_latest(*, study: Study) -> Prediction | None:
    return study.predictions.select_related("model_version").first()


def model_version_list():
    return ModelVersion.objects.select_related("created_by")
