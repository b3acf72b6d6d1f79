from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from xrayweb.inference.models import Prediction
from xrayweb.review.models import Review
from xrayweb.studies.models import Study


def study_with_details(*, qs: QuerySet[Study] | None = None) -> QuerySet[Study]:
    qs = Study.objects.all() if qs is None else qs
    return qs.select_related("uploaded_by").prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.select_related("model_version")),
        Prefetch("reviews", queryset=Review.objects.select_related("reviewer")),
    )


def worklist(*, unreviewed_first: bool = True) -> QuerySet[Study]:
    """Studies for radiologists: unreviewed finished studies first, newest first."""
    qs = study_with_details().annotate(reviewed=Exists(Review.objects.filter(study=OuterRef("pk"))))
    order = ["reviewed", "-created_at", "-id"] if unreviewed_first else ["-created_at", "-id"]
    return qs.order_by(*order)
