"""The agreement dashboard's numbers: the model's prediction against the radiologists' final
label, sliced by model version, period, site and view, in a fixed number of queries. Studies
that are not assessable (the gate refused them and no radiologist overruled it) or that a
radiologist called not diagnostic are counted on their own and left out of the comparison."""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    F,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Floor, Least, Substr, TruncWeek
from django.utils import timezone

from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.inference.selectors import model_version_active
from xrayweb.review.stats import agreement_summary
from xrayweb.studies.models import Overrule, ReviewState, Study

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class AgreementSlice:
    version: ModelVersion | None = None
    date_from: date | None = None
    date_to: date | None = None
    site: str = ""
    view: str = ""


# Predictions whose label is not to be compared: the gate refused the film and no radiologist
# found it assessable after all, or a radiologist found it not diagnostic. Per prediction, so
# that a slice by model version judges each version's own gate.
NOT_READABLE = Q(study__assessability_overrule=Overrule.NOT_DIAGNOSTIC) | (
    Q(assessable=False) & ~Q(study__assessability_overrule=Overrule.ASSESSABLE)
)


def monday(at: datetime) -> date:
    """The Monday of ``at``'s week, in the current time zone."""
    day = timezone.localtime(at).date()
    return day - timedelta(days=day.weekday())


def midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def agreement_slice(*, where: AgreementSlice) -> QuerySet[Prediction]:
    """One prediction per study: the chosen version's, or without a version the study's
    current prediction; within the period, site and view."""
    qs = Prediction.objects.all()
    if where.version is not None:
        qs = qs.filter(model_version=where.version)
    else:
        qs = qs.filter(study__current_prediction=F("pk"))
    # Days as ranges of instants (midnight to midnight in the current time zone): a __date
    # lookup casts every row's timestamp, which SQLite does in Python, row by row.
    if where.date_from:
        qs = qs.filter(study__created_at__gte=midnight(where.date_from))
    if where.date_to:
        qs = qs.filter(study__created_at__lt=midnight(where.date_to + timedelta(days=1)))
    if where.site:
        qs = qs.filter(study__site=where.site)
    if where.view:
        qs = qs.filter(study__view=where.view)
    return qs


def agreement_predictions(*, where: AgreementSlice) -> QuerySet[Prediction]:
    """The slice's predictions of studies with a final reading, readable ones only."""
    return (
        agreement_slice(where=where)
        .filter(study__review_state=ReviewState.FINAL)
        .exclude(NOT_READABLE)
    )


def assessability_counts(*, where: AgreementSlice, top: int = 10) -> dict:
    """Not-assessable studies on their own: how many the gate refused, how many of those a
    radiologist found assessable after all, how many a radiologist called not diagnostic (and
    of those, how many the gate had passed), and the gate's most frequent reasons."""
    qs = agreement_slice(where=where)
    overrule = "study__assessability_overrule"
    counts = qs.aggregate(
        n=Count("id"),
        unchecked=Count("id", filter=Q(assessable__isnull=True)),
        refused=Count("id", filter=Q(assessable=False)),
        overruled=Count("id", filter=Q(assessable=False, **{overrule: Overrule.ASSESSABLE})),
        not_diagnostic=Count("id", filter=Q(**{overrule: Overrule.NOT_DIAGNOSTIC})),
        missed=Count("id", filter=Q(assessable=True, **{overrule: Overrule.NOT_DIAGNOSTIC})),
        excluded=Count("id", filter=NOT_READABLE),
    )
    reasons = Counter(
        reason
        for assessment in qs.filter(assessable=False).values_list("assessment", flat=True)
        for reason in assessment.get("reasons", [])
    )
    return {**counts, "reasons": reasons.most_common(top)}


def _agrees():
    return Case(
        When(label=F("study__final_label"), then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )


def _labels(seen: set[str], version: ModelVersion | None) -> list[str]:
    version = version or model_version_active()
    labels = list(version.classes) if version else []
    return labels + sorted(seen - set(labels))


def agreement_dashboard(*, where: AgreementSlice) -> dict:
    qs = agreement_predictions(where=where)
    counts = {
        (row["study__final_label"], row["label"]): row["n"]
        for row in qs.values("study__final_label", "label").annotate(n=Count("id"))
    }
    labels = _labels({label for pair in counts for label in pair}, where.version)
    summary = agreement_summary(labels, counts)
    bins_f = Value(float(CALIBRATION_BINS))
    bins = {
        row["bin"]: row
        for row in qs.annotate(
            bin=Cast(Least(Floor(F("confidence") * bins_f), bins_f - 1.0), IntegerField())
        )
        .values("bin")
        .annotate(n=Count("id"), agree=Sum(_agrees()), confidence=Avg("confidence"))
    }
    calibration = []
    for k in range(CALIBRATION_BINS):
        row = bins.get(k)
        n = row["n"] if row else 0
        calibration.append(
            {
                "low": k / CALIBRATION_BINS,
                "high": (k + 1) / CALIBRATION_BINS,
                "n": n,
                "agreement": row["agree"] / n if n else 0.0,
                "confidence": row["confidence"] if n else None,
            }
        )
    n = summary["n"]
    ece = sum(
        b["n"] / n * abs(b["agreement"] - b["confidence"]) for b in calibration if b["n"] and n
    )
    return {
        **summary,
        "calibration": calibration,
        "ece": ece if n else None,
        "trend": _weekly_agreement(qs),
    }


def _weekly_agreement(qs: QuerySet[Prediction]) -> list[dict]:
    """Agreement per week of arrival (the Monday, in the current time zone). PostgreSQL
    truncates in SQL. SQLite would truncate through Django's SQL function, in Python row by
    row; instead it counts per hour of its stored UTC text in SQL, and the hours are put in
    their weeks here (exact for time zones a whole number of hours from UTC)."""
    weeks: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    if connection.vendor == "sqlite":
        hour = Substr(Cast("study__created_at", CharField()), 1, 13)
        rows = qs.annotate(hour=hour).values("hour").annotate(n=Count("id"), agree=Sum(_agrees()))
        for row in rows:
            at = datetime.strptime(row["hour"], "%Y-%m-%d %H").replace(tzinfo=UTC)
            week = weeks[monday(at)]
            week[0] += row["n"]
            week[1] += row["agree"]
    else:
        rows = (
            qs.annotate(week=TruncWeek("study__created_at"))
            .values("week")
            .annotate(n=Count("id"), agree=Sum(_agrees()))
        )
        for row in rows:
            weeks[row["week"].date()] = [row["n"], row["agree"]]
    return [
        {"period": week.isoformat(), "n": n, "agreement": agree / n}
        for week, (n, agree) in sorted(weeks.items())
    ]


def agreement_slice_choices() -> dict:
    """What the dashboard can be sliced by (three queries)."""

    def distinct(field: str) -> list[str]:
        qs = Study.objects.exclude(**{field: ""}).order_by(field)
        return list(qs.values_list(field, flat=True).distinct())

    return {
        "versions": list(ModelVersion.objects.order_by("-created_at")),
        "sites": distinct("site"),
        "views": distinct("view"),
    }


def matrix_rows(labels: list[str], matrix: list[list[int]]) -> list[tuple[str, list[dict]]]:
    """Confusion matrix rows for the template: each cell with its count and labels."""
    return [
        (
            truth,
            [
                {"n": n, "predicted": p, "diag": p == truth}
                for p, n in zip(labels, counts, strict=True)
            ],
        )
        for truth, counts in zip(labels, matrix, strict=True)
    ]
