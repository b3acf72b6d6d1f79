from collections.abc import Iterable

from django.db.models import F, Prefetch, QuerySet

from xrayweb.inference.models import Prediction
from xrayweb.inference.selectors import model_version_active, prediction_current
from xrayweb.review.filters import (
    WIDEST_SET_FIRST,
    WorklistFilter,
    readable_by,
    unreviewed_first,
)
from xrayweb.review.models import Review
from xrayweb.studies.models import ReviewState, Study
from xrayweb.studies.selectors import studies_visible


def study_with_details(*, qs: QuerySet[Study] | None = None) -> QuerySet[Study]:
    qs = Study.objects.all() if qs is None else qs
    return qs.select_related("uploaded_by", "current_prediction__model_version").prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.select_related("model_version")),
        Prefetch("reviews", queryset=Review.objects.select_related("reviewer")),
    )


# Wide JSON columns a worklist row never shows: loading them made the sort of a 10,000-study
# page several times slower on PostgreSQL.
WORKLIST_DEFERRED = [
    "current_prediction__probabilities",
    "current_prediction__member_probabilities",
    "current_prediction__heatmaps",
    "current_prediction__cam_layers",
    "current_prediction__assessment",
    "current_prediction__prediction_sets",
    "current_prediction__model_version__classes",
    "current_prediction__model_version__members",
    "current_prediction__model_version__metrics",
    "current_prediction__model_version__training",
    "current_prediction__model_version__locked_metrics",
    "current_prediction__model_version__gate",
]


def worklist_rows(*, user=None) -> QuerySet[Study]:
    """Everything a worklist row shows, in one query per page (no per-row queries); with
    ``user``, only the studies they may read (every page passes one)."""
    qs = Study.objects.select_related("current_prediction__model_version")
    if user is not None:
        qs = studies_visible(user=user, qs=qs)
    return unreviewed_first(qs.defer(*WORKLIST_DEFERRED))


def worklist(*, params, user=None) -> WorklistFilter:
    """The filtered, sorted worklist for query ``params`` (``needs_me`` uses ``user``);
    ``.qs`` is the queryset and ``.is_valid()`` tells whether every value was understood.
    With ``user``, only the studies they may read."""
    return WorklistFilter(params, queryset=worklist_rows(user=user), user=user)


def next_case(*, user) -> Study | None:
    """The most uncertain study still waiting for this user's reading: the widest prediction
    set, then the lowest confidence; arbitrations first, because they already hold two
    radiologists' time."""
    qs = readable_by(Study.objects.all(), user)
    arbitration = qs.filter(review_state=ReviewState.ARBITRATION)
    qs = arbitration if arbitration.exists() else qs
    order = [
        WIDEST_SET_FIRST,
        F("current_prediction__confidence").asc(nulls_last=True),
        "created_at",
        "id",
    ]
    return qs.order_by(*order).first()


def worklist_neighbours(*, qs: QuerySet[Study], study_id: int) -> tuple[int | None, int | None]:
    """Previous and next study ids around ``study_id`` in a worklist's order (J and K)."""
    ids = list(qs.values_list("pk", flat=True))
    try:
        index = ids.index(study_id)
    except ValueError:
        return None, ids[0] if ids else None
    before = ids[index - 1] if index > 0 else None
    after = ids[index + 1] if index + 1 < len(ids) else None
    return before, after


def review_classes(*, study: Study) -> list[str]:
    """The labels a reviewer may choose: the classes of the model that predicted the study."""
    prediction = prediction_current(study=study)
    version = prediction.model_version if prediction else model_version_active()
    return list(version.classes) if version else []


def reviews_visible(*, study: Study, user, reviews: Iterable[Review] | None = None) -> list[Review]:
    """The review history ``user`` may see, of ``reviews`` (default: the study's own). While
    a study awaits its second read, the first read stays hidden from everyone but its reader,
    so the second read is independent."""
    reviews = list(study.reviews.all() if reviews is None else reviews)
    if study.review_state != ReviewState.SECOND_READ:
        return reviews
    return [r for r in reviews if r.reviewer_id == user.pk]
