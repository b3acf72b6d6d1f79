"""Destinations, and the delivery of results to them: the model's SR and the heatmap overlay
once a prediction is stored, the radiologist's SR once a reading is final. Each object is a
``Delivery`` row whose sending is retried by ``tasks.deliver``."""

import io
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from pydicom import dcmread

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.dicomnet import sr
from xrayweb.dicomnet.models import Delivery, Destination
from xrayweb.dicomnet.senders import DeliveryError, cstore_send, stow_send
from xrayweb.errors import ApplicationError
from xrayweb.inference.models import Prediction
from xrayweb.review.models import Review
from xrayweb.studies.services import study_overlay_dicom

logger = logging.getLogger(__name__)


def destination_add(
    *,
    name: str,
    ae_title: str = "",
    host: str = "",
    port: int | None = None,
    stow_url: str = "",
    enabled: bool = True,
) -> Destination:
    """A C-STORE destination (AE title, host, port) or a STOW-RS one (URL); 400 if it is
    neither, or the name is taken."""
    kind = Destination.Kind.STOW if stow_url else Destination.Kind.CSTORE
    destination = Destination(
        name=name.strip(),
        kind=kind,
        ae_title=ae_title.strip(),
        host=host.strip(),
        port=port,
        stow_url=stow_url.strip(),
        enabled=enabled,
    )
    try:
        destination.full_clean()
    except ValidationError as exc:
        raise ApplicationError("; ".join(exc.messages)) from exc
    destination.save()
    return destination


def destination_remove(*, name: str) -> bool:
    """Delete the destination; one that results were sent to is kept, disabled, for its
    delivery history. Returns whether it was deleted."""
    destination = Destination.objects.filter(name=name).first()
    if destination is None:
        raise ApplicationError(f"There is no destination named {name!r}.", status=404)
    if destination.deliveries.exists():
        destination.enabled = False
        destination.save(update_fields=["enabled"])
        return False
    destination.delete()
    return True


def _deliveries_create(rows: list[Delivery]) -> None:
    """Insert the rows not there yet (a redelivered prediction task makes the same ones) and
    enqueue the pending ones once committed."""
    if not rows:
        return
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
    if rows[0].prediction_id:
        pending = pending.filter(prediction__in={r.prediction_id for r in rows})
    else:
        pending = pending.filter(review__in={r.review_id for r in rows})
    deliveries_enqueue(list(pending.values_list("pk", flat=True)))


def deliveries_enqueue(delivery_ids: list[int]) -> None:
    def send() -> None:
        from xrayweb.dicomnet.tasks import delivery_enqueue

        for pk in delivery_ids:
            delivery_enqueue(pk)

    if delivery_ids:
        transaction.on_commit(send)


@transaction.atomic
def deliveries_for_predictions(*, prediction_ids: list[int]) -> None:
    """To every enabled destination: the model's SR, and the overlay where there is a
    heatmap and the image is assessable (a heatmap is never sent as if it explained a
    diagnosis the model did not make). Studies uploaded as PNG or JPEG have no DICOM study to
    return to and get nothing."""
    destinations = list(Destination.objects.filter(enabled=True))
    if not destinations:
        return
    predictions = Prediction.objects.filter(pk__in=prediction_ids).exclude(study__original="")
    rows = []
    for prediction in predictions.only("pk", "study_id", "heatmaps", "assessable"):
        kinds = [Delivery.Kind.MODEL_SR]
        if prediction.heatmaps.get("fused") and prediction.assessable is not False:
            kinds.append(Delivery.Kind.OVERLAY)
        rows += [
            Delivery(destination=d, study_id=prediction.study_id, prediction=prediction, kind=k)
            for d in destinations
            for k in kinds
        ]
    _deliveries_create(rows)


@transaction.atomic
def deliveries_for_reading(*, review_id: int) -> None:
    """The final reading as an SR, to every enabled destination (DICOM studies only)."""
    review = Review.objects.filter(pk=review_id).exclude(study__original="").first()
    if review is None:
        return
    _deliveries_create(
        [
            Delivery(destination=d, study_id=review.study_id, review=review, kind=kind)
            for d in Destination.objects.filter(enabled=True)
            for kind in [Delivery.Kind.READING_SR]
        ]
    )


def _reader_name(user) -> str:
    return (user.get_full_name() or user.get_username()).strip()


def delivery_object(*, delivery: Delivery) -> bytes:
    """The DICOM object a delivery sends, built anew each time with the same UIDs."""
    study = delivery.study
    if not study.original:
        raise ApplicationError(f"Study {study.pk} has no DICOM original.", status=404)
    now = datetime.now()
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
        )
        return sr.model_result_sr(
            source=source, result=result, key=f"prediction-{prediction.pk}", when=now
        )
    review = delivery.review
    reading = sr.Reading(
        label=review.label,
        reader_name=_reader_name(review.reviewer),
        assessability=review.assessability,
        comment=review.comment,
    )
    return sr.reading_sr(source=source, reading=reading, key=f"review-{review.pk}", when=now)


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


class DeliveryPending(Exception):
    """This attempt failed and another will follow (the caller schedules it)."""


def _audit(
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


def delivery_attempt(*, delivery_id: int) -> Delivery:
    """One try at sending: delivered; or, on a peer that is down or refuses, the error kept
    and ``DeliveryPending`` raised until DICOM_DELIVERY_MAX_ATTEMPTS tries have failed, then
    failed for good. An object that cannot be built fails at once. A delivered or failed
    delivery is left alone (a duplicate task)."""
    delivery = Delivery.objects.select_related(
        "destination", "study", "prediction__model_version", "review__reviewer"
    ).get(pk=delivery_id)
    if delivery.status != Delivery.Status.PENDING:
        return delivery
    delivery.attempts += 1
    try:
        data = delivery_object(delivery=delivery)
        delivery.sop_instance_uid = str(
            dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID
        )
        _send(data=data, destination=delivery.destination)
    except DeliveryError as exc:
        delivery.last_error = str(exc)[:2000]
        exhausted = delivery.attempts >= settings.DICOM_DELIVERY_MAX_ATTEMPTS
        if exhausted:
            delivery.status = Delivery.Status.FAILED
        delivery.save()
        _audit(delivery, "failed" if exhausted else "retrying", error=delivery.last_error[:300])
        if exhausted:
            return delivery
        raise DeliveryPending(delivery.last_error) from exc
    except Exception as exc:  # the object itself cannot be made: retrying will not help
        logger.exception("delivery %s: cannot build the object", delivery.pk)
        delivery.status = Delivery.Status.FAILED
        delivery.last_error = f"cannot build the object: {type(exc).__name__}: {exc}"[:2000]
        delivery.save()
        _audit(delivery, "failed", error=delivery.last_error[:300])
        return delivery
    delivery.status = Delivery.Status.DELIVERED
    delivery.delivered_at = timezone.now()
    delivery.last_error = ""
    delivery.save()
    _audit(delivery, "delivered", sop_instance_uid=delivery.sop_instance_uid)
    return delivery


def delivery_resend(*, delivery: Delivery, actor, ip: str | None = None) -> Delivery:
    """Send a delivery again, whatever its state (an admin's choice: the peer lost it, or it
    failed for good and the peer is back). Its attempts start again."""
    with transaction.atomic():
        delivery.status = Delivery.Status.PENDING
        delivery.attempts = 0
        delivery.save(update_fields=["status", "attempts", "updated_at"])
        _audit(delivery, "resend", actor=actor, ip=ip)
        deliveries_enqueue([delivery.pk])
    return delivery


def deliveries_overdue(*, older_than: timedelta) -> list[int]:
    """Pending deliveries untouched for longer than any retry waits: their task was lost
    (the broker was down when it was enqueued). The caller enqueues them again."""
    cutoff = timezone.now() - older_than
    return list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, updated_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
