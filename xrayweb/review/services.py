from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from xrayweb.accounts.roles import CAN_REVEAL, user_has_any_role
from xrayweb.audit.models import AuditEvent, user_names
from xrayweb.audit.services import audit_record
from xrayweb.errors import ApplicationError
from xrayweb.inference.selectors import prediction_current
from xrayweb.review.models import Review
from xrayweb.review.selectors import review_classes
from xrayweb.review.signals import reading_finalized
from xrayweb.studies.models import (
    HIDDEN_ASSESSABILITY,
    Overrule,
    ReviewState,
    Study,
    assessability_effective,
)

MAX_COMMENT = 4000


def _reading(label: str, assessability: str) -> tuple[str, str]:
    """What two independent reads must share to agree: the label, or "not diagnostic"."""
    if assessability == Overrule.NOT_DIAGNOSTIC:
        return (Overrule.NOT_DIAGNOSTIC, "")
    return ("", label)


def _next_state(*, study: Study, reviewer, reading: tuple[str, str], second_read: bool):
    """(kind, new state) for a new reading; 409 if this reader may not.

    Single read: the first read is final; later readings amend it. Second read: two reads by
    different radiologists; if they agree the reading is final, if not the study waits for an
    arbiter (a third radiologist) whose reading is final. Final readings can still be amended.
    """
    state = study.review_state
    readers = {r.reviewer_id for r in study.reviews.all() if r.kind == Review.Kind.READ}
    if state == ReviewState.FINAL:
        return Review.Kind.AMENDMENT, ReviewState.FINAL
    if state == ReviewState.UNREAD:
        if second_read:
            return Review.Kind.READ, ReviewState.SECOND_READ
        return Review.Kind.READ, ReviewState.FINAL
    if reviewer.pk in readers:
        who = (
            "a second radiologist must read it independently."
            if state == ReviewState.SECOND_READ
            else "a radiologist who did not read it must arbitrate."
        )
        raise ApplicationError(f"You have already read this study; {who}", status=409)
    if state == ReviewState.SECOND_READ:
        first = next(r for r in study.reviews.all() if r.kind == Review.Kind.READ)
        if _reading(first.label, first.assessability) == reading:
            return Review.Kind.READ, ReviewState.FINAL
        return Review.Kind.READ, ReviewState.ARBITRATION
    return Review.Kind.ARBITRATION, ReviewState.FINAL


def _check_reading(*, study: Study, label: str, assessability: str) -> None:
    """400 unless the reading says something coherent about this study."""
    if assessability not in Overrule.values:
        choices = ", ".join(repr(v) for v in Overrule.values)
        raise ApplicationError(
            f"Unknown assessability {assessability!r}; choose one of: {choices}."
        )
    if assessability == Overrule.NOT_DIAGNOSTIC:
        if label:
            raise ApplicationError("A not-diagnostic reading carries no label; leave it empty.")
        return
    classes = review_classes(study=study)
    if label not in classes:
        raise ApplicationError(f"Unknown label {label!r}; choose one of: {', '.join(classes)}.")
    prediction = prediction_current(study=study)
    if prediction is not None and prediction.assessable is False and not assessability:
        reasons = "; ".join(prediction.assessment.get("reasons", []))
        raise ApplicationError(
            f"The model found this study not assessable ({reasons}). To give a label, say it is "
            "assessable after all (assessability 'assessable'); or call it 'not_diagnostic'."
        )


def review_submit(
    *,
    study: Study,
    reviewer,
    label: str = "",
    assessability: str = "",
    comment: str = "",
    expected_state: str = "",
) -> Review:
    """Append a reading and move the study's review state on. Never edits older reviews.

    ``assessability`` answers for the image: "" (as the gate says), "assessable" (after all:
    required to label a study the gate refused) or "not_diagnostic" (no label; it counts
    neither as agreement nor as disagreement with the model). The study's effective state
    follows the latest final reading. ``expected_state`` is the reading state the reader saw;
    if the study has moved on since (someone else read it meanwhile), nothing is saved and
    the reader gets a 409."""
    label = (label or "").strip()
    assessability = assessability or ""
    _check_reading(study=study, label=label, assessability=assessability)
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
        kind, state = _next_state(
            study=locked,
            reviewer=reviewer,
            reading=_reading(label, assessability),
            second_read=settings.REVIEW_SECOND_READ,
        )
        prediction = prediction_current(study=locked)
        previous_final = None
        if kind == Review.Kind.AMENDMENT:
            previous_final = locked.reviews.exclude(replaced_by__isnull=False).first()
        agrees = None
        if prediction is not None and assessability != Overrule.NOT_DIAGNOSTIC:
            agrees = prediction.label == label
        reviewer_username, reviewer_name = user_names(reviewer)
        review = Review.objects.create(
            study=locked,
            reviewer=reviewer,
            reviewer_username=reviewer_username,
            reviewer_name=reviewer_name,
            label=label,
            assessability=assessability,
            comment=comment,
            kind=kind,
            prediction=prediction,
            agrees_with_model=agrees,
            replaces=previous_final,
        )
        changes = {"review_state": state}
        if state == ReviewState.FINAL:
            gate = prediction.assessable if prediction is not None else None
            changes.update(
                final_label=label,
                finalized_at=timezone.now(),
                assessability_overrule=assessability,
                assessability=assessability_effective(gate=gate, overrule=assessability),
            )
        Study.objects.filter(pk=locked.pk).update(**changes)
        audit_record(
            actor=reviewer,
            action=AuditEvent.Action.REVIEW_CREATE,
            study=locked,
            detail={"review": review.pk, "kind": kind, "state": state},
        )
        if state == ReviewState.FINAL:
            transaction.on_commit(
                lambda: reading_finalized.send(sender=Review, review_id=review.pk)
            )
    return review


@dataclass(frozen=True)
class PredictionShown:
    prediction: object  # the study's current Prediction, or None when withheld or absent
    withheld: bool
    revealed: bool
    can_reveal: bool


def study_prediction_show(*, study: Study, user, reveal: bool, ip: str | None) -> PredictionShown:
    """The model's output as a reader's page shows it. A study that is not assessable (or not
    diagnostic) shows no diagnosis unless a reader allowed to (radiologist, admin) asks to see
    it anyway, and that reveal is audited."""
    hidden = bool(study.assessability in HIDDEN_ASSESSABILITY and study.current_prediction)
    can_reveal = user_has_any_role(user, CAN_REVEAL)
    revealed = hidden and can_reveal and reveal
    if revealed:
        audit_record(
            actor=user,
            action=AuditEvent.Action.STUDY_REVEAL,
            study=study,
            detail={"state": study.assessability},
            ip=ip,
        )
    return PredictionShown(
        prediction=None if hidden and not revealed else study.current_prediction,
        withheld=hidden and not revealed,
        revealed=revealed,
        can_reveal=can_reveal,
    )
