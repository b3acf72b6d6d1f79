"""One attempt at sending one delivery: the object built (with its stable UIDs), sent to the
destination, and the outcome written, unless another attempt or a resend has taken the
delivery over meanwhile."""

import io
import logging

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from pydicom import dcmread

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.dicomnet import sr
from xrayweb.dicomnet.models import Delivery, Destination
from xrayweb.dicomnet.scu import DeliveryError, cstore_send, stow_send
from xrayweb.errors import ApplicationError
from xrayweb.inference.conformal import sets_trusted
from xrayweb.studies.services.exports import study_overlay_dicom

logger = logging.getLogger(__name__)


class DeliveryPending(Exception):
    """This attempt failed and another will follow (the caller schedules it)."""


def _reader_name(review) -> str:
    """The reader as of the reading; readings made before names were kept: the account now."""
    if review.reviewer_username:
        return review.reviewer_name or review.reviewer_username
    user = review.reviewer
    return (user.get_full_name() or user.get_username()).strip()


def delivery_object(*, delivery: Delivery) -> bytes:
    """The DICOM object a delivery sends. Built anew each time, with the same UIDs and the
    same content: its dates are those of the prediction or reading, not of the sending."""
    study = delivery.study
    if not study.original:
        raise ApplicationError(f"Study {study.pk} has no DICOM original.", status=404)
    if delivery.kind == Delivery.Kind.OVERLAY:
        prediction = delivery.prediction
        return study_overlay_dicom(
            study=study,
            heatmap_path=prediction.heatmaps["fused"],
            key=f"prediction-{prediction.pk}",
        )
    with study.original.open("rb") as f:
        source = f.read()
    if delivery.kind == Delivery.Kind.MODEL_SR:
        prediction = delivery.prediction
        assessment = prediction.assessment or {}
        result = sr.ModelResult(
            label=prediction.label,
            probabilities=prediction.probabilities,
            model_name=prediction.model_version.name,
            model_sha256=prediction.bundle_sha256,
            assessable=prediction.assessable is not False,
            reasons=[str(r) for r in assessment.get("reasons") or []],
            flags=[str(f) for f in assessment.get("flags") or []],
            prediction_sets=sets_trusted(
                prediction_sets=prediction.prediction_sets, assessable=prediction.assessable
            ),
        )
        when = timezone.localtime(prediction.created_at)
        return sr.model_result_sr(
            source=source, result=result, key=f"prediction-{prediction.pk}", when=when
        )
    review = delivery.review
    reading = sr.Reading(
        label=review.label,
        reader_name=_reader_name(review),
        assessability=review.assessability,
        comment=review.comment,
    )
    when = timezone.localtime(review.created_at)
    return sr.reading_sr(source=source, reading=reading, key=f"review-{review.pk}", when=when)


def _send(*, data: bytes, destination: Destination) -> None:
    timeout = settings.DICOM_DELIVERY_TIMEOUT
    if destination.kind == Destination.Kind.STOW:
        stow_send(data=data, url=destination.stow_url, timeout=timeout)
    else:
        cstore_send(
            data=data,
            ae_title=destination.ae_title,
            host=destination.host,
            port=destination.port,
            calling_ae=settings.DICOM_AE_TITLE,
            timeout=timeout,
        )


def delivery_audit(
    delivery: Delivery, outcome: str, *, actor=None, ip: str | None = None, **detail
) -> None:
    audit_record(
        actor=actor,
        ip=ip,
        action=AuditEvent.Action.DICOM_DELIVERY,
        study=delivery.study,
        detail={
            "delivery": delivery.pk,
            "destination": delivery.destination.name,
            "kind": delivery.kind,
            "outcome": outcome,
            "attempt": delivery.attempts,
            **detail,
        },
    )


def _claim(delivery: Delivery) -> bool:
    """Count this attempt before sending, if the delivery is still pending at the attempts
    this task read: a crash mid-send still uses up an attempt, and of two tasks that read the
    same state only one sends. (A task that reads after this claim may send too: the
    object's UIDs are stable, so the peer stores it over itself.)"""
    claimed = Delivery.objects.filter(
        pk=delivery.pk, status=Delivery.Status.PENDING, attempts=delivery.attempts
    ).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    delivery.attempts += 1
    return bool(claimed)


def _finish(delivery: Delivery, **changes) -> bool:
    """Write this attempt's outcome, unless the delivery moved on meanwhile (an admin resent
    it: its attempts started again). Returns whether it was written."""
    written = Delivery.objects.filter(
        pk=delivery.pk, status=Delivery.Status.PENDING, attempts=delivery.attempts
    ).update(**changes, updated_at=timezone.now())
    for name, value in changes.items():
        setattr(delivery, name, value)
    return bool(written)


def delivery_attempt(*, delivery_id: int) -> Delivery:
    """One try at sending: delivered; or, on a peer that is down or refuses, the error kept
    and ``DeliveryPending`` raised until DICOM_DELIVERY_MAX_ATTEMPTS tries have failed, then
    failed for good. An object that cannot be built fails at once. A delivery that is not
    pending, or that another task has just claimed, is left alone."""
    delivery = Delivery.objects.select_related(
        "destination", "study", "prediction__model_version", "review__reviewer"
    ).get(pk=delivery_id)
    if delivery.status != Delivery.Status.PENDING or not _claim(delivery):
        return delivery
    try:
        data = delivery_object(delivery=delivery)
        uid = str(dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
        _send(data=data, destination=delivery.destination)
    except DeliveryError as exc:
        error = str(exc)[:2000]
        exhausted = delivery.attempts >= settings.DICOM_DELIVERY_MAX_ATTEMPTS
        status = Delivery.Status.FAILED if exhausted else Delivery.Status.PENDING
        if not _finish(delivery, status=status, last_error=error):
            return delivery  # resent meanwhile: the resend's own task carries on
        delivery_audit(delivery, "failed" if exhausted else "retrying", error=error[:300])
        if exhausted:
            return delivery
        raise DeliveryPending(error) from exc
    except Exception as exc:  # the object itself cannot be made: retrying will not help
        logger.exception("delivery %s: cannot build the object", delivery.pk)
        error = f"cannot build the object: {type(exc).__name__}: {exc}"[:2000]
        if _finish(delivery, status=Delivery.Status.FAILED, last_error=error):
            delivery_audit(delivery, "failed", error=error[:300])
        return delivery
    delivered = _finish(
        delivery,
        status=Delivery.Status.DELIVERED,
        delivered_at=timezone.now(),
        last_error="",
        sop_instance_uid=uid,
    )
    if delivered:
        delivery_audit(delivery, "delivered", sop_instance_uid=uid)
    return delivery
