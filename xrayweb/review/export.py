"""The CSV export's rows: every prediction with its study's full review history."""

import hashlib
import hmac
import json
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone

from xrayweb.accounts.roles import ADMIN, user_has_any_role
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.errors import ApplicationError
from xrayweb.inference.models import Prediction
from xrayweb.review.models import Review
from xrayweb.review.selectors import reviews_visible

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


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def pseudonym(kind: str, value: str) -> str:
    """A stable stand-in for an identifier (keyed by DEID_SECRET): the same patient gets the
    same pseudonym in every export, and nobody without the key can go back."""
    if not value:
        return ""
    digest = hmac.new(settings.DEID_SECRET.encode(), f"{kind}:{value}".encode(), hashlib.sha256)
    return f"{kind[0].upper()}-{digest.hexdigest()[:12]}"


def _row(p: Prediction, reader, identified: bool) -> list[str]:
    study = p.study
    reviews = study.export_reviews
    if reader is not None:
        reviews = reviews_visible(study=study, user=reader, reviews=reviews)
    history = [
        {
            "at": r.created_at.isoformat(),
            "reader": r.reviewer_username or r.reviewer.username,
            "kind": r.kind,
            "label": r.label,
            "assessability": r.assessability,
            "agrees_with_model": r.agrees_with_model,
            # Free text may name the patient: only in the identified export.
            "comment": r.comment if identified else ("(withheld)" if r.comment else ""),
        }
        for r in reviews
    ]
    values = [
        p.pk,
        study.pk,
        study.patient_id if identified else pseudonym("patient", study.patient_id),
        study.accession if identified else pseudonym("accession", study.accession),
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


def export_filename() -> str:
    return f"xrayweb-predictions-{timezone.now():%Y%m%d-%H%M%S}.csv"


def export_rows(
    *, reader=None, identified: bool = False, chunk_size: int = 500
) -> Iterator[list[str]]:
    """One row of ``COLUMNS`` per prediction, oldest first, streamed: queries grow with the
    number of chunks, not of rows. ``reader``: the user whose view of the readings the rows
    give (a first read awaiting a second read by someone else is left out, as on the review
    page); None: every reading (admins). Pseudonymised unless ``identified``: patient IDs and
    accessions become keyed pseudonyms, and reading comments are withheld."""
    reviews = Review.objects.select_related("reviewer").order_by("created_at", "id")
    qs = (
        Prediction.objects.select_related("study", "model_version")
        .prefetch_related(Prefetch("study__reviews", queryset=reviews, to_attr="export_reviews"))
        .order_by("id")
    )
    for prediction in qs.iterator(chunk_size=chunk_size):
        yield _row(prediction, reader, identified)


def export_rows_for(*, user, identified: bool = False) -> Iterator[list[str]]:
    """The export as ``user`` may see it: every reading for an admin, the review page's
    hiding rule for anyone else; identified only for an admin who asks (the caller audits
    it). The page and the API both export through this."""
    admin = user_has_any_role(user, {ADMIN})
    if identified and not admin:
        raise ApplicationError("Only admins may export patient identifiers.", status=403)
    return export_rows(reader=None if admin else user, identified=identified)


def predictions_export(*, user, query, ip: str | None) -> Iterator[list[str]]:
    """One export's rows, audited with what it holds: pseudonymised unless an admin asks for
    ``?identified=1`` (anyone else: ApplicationError 403, and nothing is audited)."""
    identified = query.get("identified") in ("1", "true", "yes")
    rows = export_rows_for(user=user, identified=identified)
    detail = {"kind": "identified" if identified else "pseudonymised", "scope": "all predictions"}
    audit_record(actor=user, action=AuditEvent.Action.EXPORT_CSV, detail=detail, ip=ip)
    return rows
