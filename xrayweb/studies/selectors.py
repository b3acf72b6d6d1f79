from django.db.models import QuerySet

from xrayweb.studies.models import Study


def study_list(*, ids: list[int] | None = None, uploaded_by=None) -> QuerySet[Study]:
    qs = Study.objects.select_related("uploaded_by", "current_prediction")
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    if uploaded_by is not None:
        qs = qs.filter(uploaded_by=uploaded_by)
    return qs
