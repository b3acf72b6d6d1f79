"""Worklist filters, shared by the page and the API (django-filter)."""

import django_filters
from django.conf import settings
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Q, Value, When

from xrayweb.inference.models import ModelVersion
from xrayweb.inference.selectors import model_version_active
from xrayweb.review.models import Review
from xrayweb.studies.models import HIDDEN_ASSESSABILITY, Assessability, ReviewState, Study

YES_NO = [("yes", "yes"), ("no", "no")]
SORTS = {
    "": ("unreviewed first, newest", None),
    "newest": ("newest", ["-created_at", "-id"]),
    "oldest": ("oldest", ["created_at", "id"]),
    "uncertain": (
        "least confident",
        [F("current_prediction__confidence").asc(nulls_last=True), "-created_at", "-id"],
    ),
    "confident": (
        "most confident",
        [F("current_prediction__confidence").desc(nulls_last=True), "-created_at", "-id"],
    ),
    "patient": ("patient ID", ["patient_id", "-created_at", "-id"]),
    "patient_desc": ("patient ID, Z to A", ["-patient_id", "-created_at", "-id"]),
}
# "Needs my reading" puts the widest 0.90 prediction sets first (the model cannot tell), ahead
# of whatever order was chosen: those films need a reader's judgment most.
WIDEST_SET_FIRST = F("current_prediction__set_size").desc(nulls_last=True)
# Always shown above the list; the rest sit behind "More filters".
PRIMARY_FILTERS = ("q", "status", "review_state", "needs_me")


def unreviewed_first(qs):
    pending = Case(
        When(review_state=ReviewState.FINAL, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    return qs.order_by(pending, "-created_at", "-id")


def readable_by(qs, user):
    """Studies that still need a reading from ``user``: done, and unread, or awaiting a second
    read or arbitration from someone who has not read them yet."""
    has_read = Exists(Review.objects.filter(study=OuterRef("pk"), reviewer=user))
    return qs.filter(status=Study.Status.DONE).filter(
        Q(review_state=ReviewState.UNREAD)
        | (Q(review_state__in=[ReviewState.SECOND_READ, ReviewState.ARBITRATION]) & ~has_read)
    )


def _yes_no(qs, condition: Q, value: str):
    if value == "yes":
        return qs.filter(condition)
    if value == "no":
        return qs.exclude(condition)
    return qs


def _active_classes() -> list[tuple[str, str]]:
    version = model_version_active()
    return [(c, c.replace("_", " ")) for c in (version.classes if version else [])]


def _seen(column: str):
    def choices() -> list[tuple[str, str]]:
        values = Study.objects.exclude(**{column: ""}).order_by(column)
        return [(v, v) for v in values.values_list(column, flat=True).distinct()]

    return choices


class WorklistFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Patient ID or accession")
    status = django_filters.ChoiceFilter(choices=Study.Status.choices, label="Status")
    review_state = django_filters.ChoiceFilter(choices=ReviewState.choices, label="Reading")
    reviewed = django_filters.ChoiceFilter(
        choices=YES_NO, method="filter_reviewed", label="Reviewed"
    )
    needs_me = django_filters.ChoiceFilter(
        choices=[("yes", "yes")], method="filter_needs_me", label="Needs my reading"
    )
    disagree = django_filters.ChoiceFilter(
        choices=YES_NO, method="filter_disagree", label="Model ≠ radiologist"
    )
    low_confidence = django_filters.ChoiceFilter(
        choices=YES_NO, method="filter_low_confidence", label="Low confidence"
    )
    members_disagree = django_filters.ChoiceFilter(
        choices=YES_NO, method="filter_members_disagree", label="Members disagree"
    )
    assessability = django_filters.ChoiceFilter(choices=Assessability.choices, label="Assessable")
    outside_lungs = django_filters.ChoiceFilter(
        choices=YES_NO, method="filter_outside_lungs", label="Looked outside the lungs"
    )
    date_from = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", label="Uploaded from"
    )
    date_to = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__lte", label="Uploaded until"
    )
    model_version = django_filters.ModelChoiceFilter(
        field_name="current_prediction__model_version",
        queryset=ModelVersion.objects.all(),
        to_field_name="name",
        label="Model version",
    )
    # Choices read when the form is drawn or one of these is given, never on the status polls
    # (GET /api/studies/?ids=…) that use the same filters.
    predicted = django_filters.ChoiceFilter(
        field_name="current_prediction__label", label="Predicted label", choices=_active_classes
    )
    confirmed = django_filters.ChoiceFilter(
        field_name="final_label", label="Final label", choices=_active_classes
    )
    site = django_filters.ChoiceFilter(field_name="site", label="Site", choices=_seen("site"))
    view = django_filters.ChoiceFilter(field_name="view", label="View", choices=_seen("view"))
    sort = django_filters.ChoiceFilter(
        choices=[(k, v[0]) for k, v in SORTS.items() if k],
        method="sort_by",
        empty_label="—",
        label="Sort",
    )

    class Meta:
        model = Study
        fields: list[str] = []

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def filter_queryset(self, queryset):
        qs = super().filter_queryset(queryset)
        if not self._needs_me(self.form.cleaned_data.get("needs_me")):
            return qs
        # After the sort filter, which replaces the ordering: set size leads, the rest follows.
        return qs.order_by(WIDEST_SET_FIRST, *(qs.query.order_by or Study._meta.ordering))

    def _needs_me(self, value) -> bool:
        return value == "yes" and self.user is not None and self.user.is_authenticated

    def filter_needs_me(self, qs, name, value):
        return readable_by(qs, self.user) if self._needs_me(value) else qs

    def search(self, qs, name, value):
        value = value.strip()
        if not value:
            return qs
        return qs.filter(Q(patient_id__istartswith=value) | Q(accession__istartswith=value))

    def filter_reviewed(self, qs, name, value):
        return _yes_no(qs, Q(review_state=ReviewState.FINAL), value)

    def filter_disagree(self, qs, name, value):
        # Not assessable or not diagnostic: the model's label is not compared.
        qs = qs.exclude(assessability__in=HIDDEN_ASSESSABILITY) if value else qs
        differs = Q(review_state=ReviewState.FINAL, current_prediction__isnull=False) & ~Q(
            current_prediction__label=F("final_label")
        )
        if value == "yes":
            return qs.filter(differs)
        if value == "no":
            return qs.filter(
                review_state=ReviewState.FINAL, current_prediction__label=F("final_label")
            )
        return qs

    def filter_low_confidence(self, qs, name, value):
        low = Q(current_prediction__confidence__lt=settings.REVIEW_LOW_CONFIDENCE)
        if value == "no":
            return qs.filter(current_prediction__confidence__gte=settings.REVIEW_LOW_CONFIDENCE)
        return _yes_no(qs, low, value)

    def filter_members_disagree(self, qs, name, value):
        if value == "yes":
            return qs.filter(current_prediction__members_agree=False)
        if value == "no":
            return qs.filter(current_prediction__members_agree=True)
        return qs

    def filter_outside_lungs(self, qs, name, value):
        # Only measured predictions: no lung mask, or an empty heatmap, is neither.
        threshold = settings.CAM_OUTSIDE_LUNGS_THRESHOLD
        if value == "yes":
            return qs.filter(current_prediction__cam_lung_fraction__lt=threshold)
        if value == "no":
            return qs.filter(current_prediction__cam_lung_fraction__gte=threshold)
        return qs

    def sort_by(self, qs, name, value):
        return qs.order_by(*SORTS[value][1]) if SORTS.get(value, (None, None))[1] else qs
