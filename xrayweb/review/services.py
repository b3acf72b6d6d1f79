from django.db import transaction

from xrayweb.errors import ApplicationError
from xrayweb.inference.selectors import prediction_latest
from xrayweb.inference.services import model_version_active
from xrayweb.review.models import Review
from xrayweb.studies.models import Study

MAX_COMMENT = 4000


def review_classes(*, study: Study) -> list[str]:
    """The labels a reviewer may choose: the classes of the model that predicted the study."""
    prediction = prediction_latest(study=study)
    version = prediction.model_version if prediction else model_version_active()
    return list(version.classes) if version else []


def review_submit(*, study: Study, reviewer, label: str, comment: str = "") -> Review:
    """Append a review: confirm the predicted label or correct it. Never edits older rows."""
    classes = review_classes(study=study)
    if label not in classes:
        raise ApplicationError(f"Unknown label {label!r}; choose one of: {', '.join(classes)}.")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise ApplicationError(f"The comment is longer than {MAX_COMMENT} characters.")
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        previous = locked.reviews.first()
        prediction = prediction_latest(study=locked)
        return Review.objects.create(
            study=locked,
            reviewer=reviewer,
            label=label,
            comment=comment,
            prediction=prediction,
            agrees_with_model=(prediction.label == label) if prediction else None,
            replaces=previous,
        )
