from django.db.models import Max, QuerySet

from xrayweb.studies.models import Overrule, ReviewState, Study


def study_list(*, ids: list[int] | None = None, uploaded_by=None) -> QuerySet[Study]:
    qs = Study.objects.select_related("uploaded_by", "current_prediction")
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    if uploaded_by is not None:
        qs = qs.filter(uploaded_by=uploaded_by)
    return qs


def studies_final_labelled() -> QuerySet[Study]:
    """Every study with a final radiologist label (a single read, two agreeing reads, an
    arbitration, or a later amendment), by id, each with ``last_review``: the id of its newest
    reading (readings are appended, never rewritten, so the highest id is the newest). Studies
    still awaiting a second read or arbitration are left out, and so are films a radiologist
    found not diagnostic (they have no label)."""
    return (
        Study.objects.filter(review_state=ReviewState.FINAL)
        .exclude(assessability_overrule=Overrule.NOT_DIAGNOSTIC)
        .annotate(last_review=Max("reviews__id"))
        .order_by("pk")
    )
