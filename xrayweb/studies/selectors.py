import re

from django.db.models import Max, Q, QuerySet

from xrayweb.accounts.roles import CAN_READ_ALL_SITES, STAFF, user_has_any_role, user_roles
from xrayweb.accounts.selectors import user_site
from xrayweb.studies.models import Overrule, ReviewState, Study


def studies_visible(*, user, qs: QuerySet[Study] | None = None) -> QuerySet[Study]:
    """The studies ``user`` may read. Radiologists and admins read every site's. Staff read
    their site's, or only their own uploads when they have no site (issue 27: an uploader had
    every patient's films). Anyone else reads none. Pages and the API answer 404 for the rest,
    so a study's existence does not leak."""
    qs = Study.objects.all() if qs is None else qs
    if user_has_any_role(user, CAN_READ_ALL_SITES):
        return qs
    if STAFF not in user_roles(user):
        return qs.none()
    site = user_site(user=user)
    return qs.filter(site=site) if site else qs.filter(uploaded_by=user)


# Heatmaps and lung masks are named after their study: heatmaps/<study id>-<random>…png.
_DERIVED = re.compile(r"(?:heatmaps|masks)/(\d+)-[^/]+$")


def study_of_media(*, path: str, qs: QuerySet[Study] | None = None) -> Study | None:
    """The study a media file belongs to (its image, display image, thumbnail, a heatmap or
    a lung mask), among ``qs``; None when it is none of theirs."""
    qs = Study.objects.all() if qs is None else qs
    derived = _DERIVED.match(path)
    if derived:
        return qs.filter(pk=int(derived.group(1))).first()
    if path.startswith("studies/"):
        return qs.filter(Q(image=path) | Q(display_image=path) | Q(thumbnail=path)).first()
    return None


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
