"""CSV export of every prediction with its study's full review history."""

import csv
import json
from collections.abc import Iterator

from django.db.models import Prefetch
from django.http import StreamingHttpResponse
from django.utils import timezone

from xrayweb.inference.models import Prediction
from xrayweb.review.models import Review
from xrayweb.studies.models import ReviewState

COLUMNS = [
    "prediction_id",
    "study_id",
    "patient_id",
    "accession",
    "site",
    "view",
    "uploaded_at",
    "model_version",
    "bundle_sha256",
    "predicted_label",
    "confidence",
    "probabilities",
    "member_labels",
    "members_agree",
    "cam_lung_fraction",
    "assessable",
    "reasons",
    "checked_by",
    "predicted_at",
    "is_current_prediction",
    "review_state",
    "final_label",
    "finalized_at",
    "overrule",
    "assessability",
    "reviews",
]
# Spreadsheet programs run cells that start with these as formulas (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _row(p: Prediction, blind_for: int | None) -> list[str]:
    study = p.study
    reviews = study.export_reviews
    if blind_for is not None and study.review_state == ReviewState.SECOND_READ:
        # The pending first read stays hidden from other readers here too.
        reviews = [r for r in reviews if r.reviewer_id == blind_for]
    history = [
        {
            "at": r.created_at.isoformat(),
            "reader": r.reviewer.username,
            "kind": r.kind,
            "label": r.label,
            "assessability": r.assessability,
            "agrees_with_model": r.agrees_with_model,
            "comment": r.comment,
        }
        for r in reviews
    ]
    values = [
        p.pk,
        study.pk,
        study.patient_id,
        study.accession,
        study.site,
        study.view,
        study.created_at,
        p.model_version.name,
        p.bundle_sha256,
        p.label,
        f"{p.confidence:.6f}",
        p.probabilities,
        p.member_labels,
        p.members_agree,
        p.cam_lung_fraction,
        p.assessable,
        p.assessment.get("reasons", []) if p.assessable is not None else None,
        p.assessment.get("checked_by"),
        p.created_at,
        study.current_prediction_id == p.pk,
        study.review_state,
        study.final_label,
        study.finalized_at,
        study.assessability_overrule,
        study.assessability,
        history,
    ]
    return [_cell(v) for v in values]


def export_rows(*, blind_for: int | None = None, chunk_size: int = 500) -> Iterator[str]:
    """CSV lines, streamed: a header, then one line per prediction, oldest first. Queries grow
    with the number of chunks, not of rows. ``blind_for``: a reader's user id, for whom first
    reads awaiting a second read by someone else are left out (None: admins see all)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    reviews = Review.objects.select_related("reviewer").order_by("created_at", "id")
    qs = (
        Prediction.objects.select_related("study", "model_version")
        .prefetch_related(Prefetch("study__reviews", queryset=reviews, to_attr="export_reviews"))
        .order_by("id")
    )
    for prediction in qs.iterator(chunk_size=chunk_size):
        yield writer.writerow(_row(prediction, blind_for))


def export_response(*, user, ip: str | None) -> StreamingHttpResponse:
    """The CSV download, audited. For a radiologist, studies awaiting a second read show only
    their own first read, as on the review page; admins see everything."""
    from xrayweb.accounts.roles import ADMIN, user_has_any_role
    from xrayweb.review.models import AuditEvent
    from xrayweb.review.services import audit_record

    audit_record(actor=user, action=AuditEvent.Action.EXPORT_CSV, ip=ip)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    blind_for = None if user_has_any_role(user, {ADMIN}) else user.pk
    response = StreamingHttpResponse(
        export_rows(blind_for=blind_for), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="xrayweb-predictions-{stamp}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
