"""Destinations, and the delivery of results to them: the model's SR and the heatmap overlay
once a prediction is stored, the radiologist's SR once a reading is final. Each object is a
``Delivery`` row whose sending is retried by ``tasks.deliver``."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from xrayweb.dicomnet.models import Delivery, Destination
from xrayweb.dicomnet.sending import delivery_audit
from xrayweb.errors import ApplicationError
from xrayweb.inference.models import Prediction
from xrayweb.review.models import Review
from xrayweb.studies.models import ReviewState


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
    """Insert the rows not there yet (a redelivered prediction task, or the backfill, makes
    the same ones again) and enqueue just those, once committed."""
    if not rows:
        return

    def key(row: Delivery) -> tuple:
        return (row.destination_id, row.kind, row.prediction_id, row.review_id)

    existing = {
        key(d)
        for d in Delivery.objects.filter(
            Q(prediction__in={r.prediction_id for r in rows if r.prediction_id})
            | Q(review__in={r.review_id for r in rows if r.review_id})
        ).only("destination_id", "kind", "prediction_id", "review_id")
    }
    new = [r for r in rows if key(r) not in existing]
    Delivery.objects.bulk_create(new, ignore_conflicts=True)
    keys = {key(r) for r in new}
    made = Delivery.objects.filter(
        Q(prediction__in={r.prediction_id for r in new if r.prediction_id})
        | Q(review__in={r.review_id for r in new if r.review_id}),
        status=Delivery.Status.PENDING,
    ).only("pk", "destination_id", "kind", "prediction_id", "review_id")
    deliveries_enqueue([d.pk for d in made if key(d) in keys])


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
    for prediction in predictions.only("pk", "study_id", "heatmaps", "assessable", "created_at"):
        kinds = [Delivery.Kind.MODEL_SR]
        if prediction.heatmaps.get("fused") and prediction.assessable is not False:
            kinds.append(Delivery.Kind.OVERLAY)
        rows += [
            Delivery(destination=d, study_id=prediction.study_id, prediction=prediction, kind=k)
            for d in destinations
            if d.created_at <= prediction.created_at
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
            Delivery(
                destination=d,
                study_id=review.study_id,
                review=review,
                kind=Delivery.Kind.READING_SR,
            )
            for d in Destination.objects.filter(enabled=True, created_at__lte=review.created_at)
        ]
    )


def delivery_resend(*, delivery: Delivery, actor, ip: str | None = None) -> Delivery:
    """Send a delivery again, whatever its state (an admin's choice: the peer lost it, or it
    failed for good and the peer is back). Its attempts start again; an attempt in flight
    meanwhile does not write its outcome over this."""
    with transaction.atomic():
        delivery.status = Delivery.Status.PENDING
        delivery.attempts = 0
        delivery.save(update_fields=["status", "attempts", "updated_at"])
        delivery_audit(delivery, "resend", actor=actor, ip=ip)
        deliveries_enqueue([delivery.pk])
    return delivery


def deliveries_overdue(*, older_than: timedelta) -> list[int]:
    """Pending deliveries untouched for longer than any retry waits: their task was lost
    (the broker was down when it was enqueued). The caller enqueues them again."""
    cutoff = timezone.now() - older_than
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING, updated_at__lt=cutoff)
    return list(pending.values_list("pk", flat=True))


def deliveries_backfill(*, since: timedelta) -> None:
    """Make the deliveries that the signals should have made in the last ``since`` and did
    not (their receiver failed after the commit): for predictions of DICOM studies, and for
    final readings, that have none. Each destination gets only what was made after it was
    added."""
    if not Destination.objects.filter(enabled=True).exists():
        return
    cutoff = timezone.now() - since
    missing = (
        Prediction.objects.filter(created_at__gte=cutoff)
        .exclude(study__original="")
        .filter(~Exists(Delivery.objects.filter(prediction=OuterRef("pk"))))
    )
    deliveries_for_predictions(prediction_ids=list(missing.values_list("pk", flat=True)))
    # The latest reading of a study that is final made it final (or kept it so).
    latest = Review.objects.filter(study=OuterRef("study")).order_by("-created_at", "-id")
    readings = (
        Review.objects.filter(created_at__gte=cutoff, study__review_state=ReviewState.FINAL)
        .exclude(study__original="")
        .filter(pk=Subquery(latest.values("pk")[:1]))
        .filter(~Exists(Delivery.objects.filter(review=OuterRef("pk"))))
    )
    for review_id in readings.values_list("pk", flat=True):
        deliveries_for_reading(review_id=review_id)
