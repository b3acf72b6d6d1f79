from django.conf import settings
from django.db import transaction
from django.utils import timezone

from xrayweb.errors import ApplicationError
from xrayweb.inference.selectors import prediction_current
from xrayweb.inference.services import model_version_active
from xrayweb.review.models import AuditEvent, Review
from xrayweb.studies.models import ReviewState, Study

MAX_COMMENT = 4000


def review_classes(*, study: Study) -> list[str]:
    """The labels a reviewer may choose: the classes of the model that predicted the study."""
    prediction = prediction_current(study=study)
    version = prediction.model_version if prediction else model_version_active()
    return list(version.classes) if version else []


def _next_state(*, study: Study, reviewer, label: str, second_read: bool):
    """(kind, new state, final label or "") for a new reading; 409 if this reader may not.

    Single read: the first read is final; later readings amend it. Second read: two reads by
    different radiologists; if they agree the label is final, if not the study waits for an
    arbiter (a third radiologist) whose reading is final. Final labels can still be amended.
    """
    state = study.review_state
    readers = {r.reviewer_id for r in study.reviews.all() if r.kind == Review.Kind.READ}
    if state == ReviewState.FINAL:
        return Review.Kind.AMENDMENT, ReviewState.FINAL, label
    if state == ReviewState.UNREAD:
        if second_read:
            return Review.Kind.READ, ReviewState.SECOND_READ, ""
        return Review.Kind.READ, ReviewState.FINAL, label
    if reviewer.pk in readers:
        who = (
            "a second radiologist must read it independently."
            if state == ReviewState.SECOND_READ
            else "a radiologist who did not read it must arbitrate."
        )
        raise ApplicationError(f"You have already read this study; {who}", status=409)
    if state == ReviewState.SECOND_READ:
        first = next(r for r in study.reviews.all() if r.kind == Review.Kind.READ)
        if first.label == label:
            return Review.Kind.READ, ReviewState.FINAL, label
        return Review.Kind.READ, ReviewState.ARBITRATION, ""
    return Review.Kind.ARBITRATION, ReviewState.FINAL, label


def reviews_visible(*, study: Study, user) -> list[Review]:
    """The review history a user may see. While a study awaits its second read, the first
    read stays hidden from everyone but its reader, so the second read is independent."""
    reviews = list(study.reviews.all())
    if study.review_state != ReviewState.SECOND_READ:
        return reviews
    return [r for r in reviews if r.reviewer_id == user.pk]


def review_submit(
    *, study: Study, reviewer, label: str, comment: str = "", expected_state: str = ""
) -> Review:
    """Append a reading and move the study's review state on. Never edits older reviews.

    ``expected_state`` is the reading state the reader saw; if the study has moved on since
    (someone else read it meanwhile), nothing is saved and the reader gets a 409."""
    classes = review_classes(study=study)
    if label not in classes:
        raise ApplicationError(f"Unknown label {label!r}; choose one of: {', '.join(classes)}.")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise ApplicationError(f"The comment is longer than {MAX_COMMENT} characters.")
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if expected_state and expected_state != locked.review_state:
            raise ApplicationError(
                "This study was read by someone else while you had it open (it is now "
                f"{locked.get_review_state_display()}). Reload it to see the current reading.",
                status=409,
            )
        kind, state, final_label = _next_state(
            study=locked, reviewer=reviewer, label=label, second_read=settings.REVIEW_SECOND_READ
        )
        prediction = prediction_current(study=locked)
        previous_final = None
        if kind == Review.Kind.AMENDMENT:
            previous_final = locked.reviews.exclude(replaced_by__isnull=False).first()
        review = Review.objects.create(
            study=locked,
            reviewer=reviewer,
            label=label,
            comment=comment,
            kind=kind,
            prediction=prediction,
            agrees_with_model=(prediction.label == label) if prediction else None,
            replaces=previous_final,
        )
        changes = {"review_state": state}
        if final_label:
            changes.update(final_label=final_label, finalized_at=timezone.now())
        Study.objects.filter(pk=locked.pk).update(**changes)
        AuditEvent.objects.create(
            actor=reviewer,
            action=AuditEvent.Action.REVIEW_CREATE,
            study=locked,
            detail={"review": review.pk, "kind": kind, "state": state},
        )
    return review


def audit_record(
    *, actor, action: str, study: Study | None = None, detail: dict | None = None, ip=None
) -> AuditEvent:
    """Append an audit event. Details carry keys and counts, never patient identifiers."""
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        study=study,
        detail=detail or {},
        ip=ip or None,
    )
