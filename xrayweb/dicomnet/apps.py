import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)

# The receivers run after the prediction or reading is committed: a failure here must not
# reach the sender (the worker would take the committed prediction for a failed one). What
# they could not make, the periodic backfill (tasks.resend_overdue) makes later.


def _deliver_predictions(sender, *, prediction_ids: list[int], **kwargs) -> None:
    from xrayweb.dicomnet.services import deliveries_for_predictions

    try:
        deliveries_for_predictions(prediction_ids=prediction_ids)
    except Exception:
        logger.exception(
            "deliveries for predictions %s not made; the backfill will", prediction_ids
        )


def _deliver_reading(sender, *, review_id: int, **kwargs) -> None:
    from xrayweb.dicomnet.services import deliveries_for_reading

    try:
        deliveries_for_reading(review_id=review_id)
    except Exception:
        logger.exception("deliveries for review %s not made; the backfill will", review_id)


DESTINATION_FIELDS = ("name", "kind", "ae_title", "host", "port", "stow_url", "enabled")


def _shown(field: str, value):
    if field == "stow_url" and value:
        from xrayweb.dicomnet.scu import _without_credentials

        return _without_credentials(value)
    return value


def _destination_saved(sender, instance, created, **kwargs) -> None:
    """Where identified results go is a change the audit keeps (issue 27)."""
    from xrayweb.audit.changes import record_change
    from xrayweb.audit.models import AuditEvent

    old = getattr(instance, "_audit_before", None) or {}
    if old == "unchanged":
        return
    now = {f: _shown(f, getattr(instance, f)) for f in DESTINATION_FIELDS}
    changed = {f: v for f, v in now.items() if created or _shown(f, old.get(f)) != v}
    if changed:
        detail = {"destination": instance.pk, "created" if created else "changed": changed}
        record_change(AuditEvent.Action.DESTINATION_CHANGE, detail)


def _destination_deleted(sender, instance, **kwargs) -> None:
    from xrayweb.audit.changes import record_change
    from xrayweb.audit.models import AuditEvent

    detail = {"destination": instance.pk, "removed": instance.name}
    record_change(AuditEvent.Action.DESTINATION_CHANGE, detail)


class DicomnetConfig(AppConfig):
    name = "xrayweb.dicomnet"
    label = "dicomnet"
    verbose_name = "DICOM node"

    def ready(self) -> None:
        # Inference and review sit below the DICOM node and never import it: a stored
        # prediction and a final reading announce themselves, and their results are sent.
        from xrayweb.inference.signals import predictions_recorded
        from xrayweb.review.signals import reading_finalized

        predictions_recorded.connect(_deliver_predictions, dispatch_uid="dicomnet-predictions")
        reading_finalized.connect(_deliver_reading, dispatch_uid="dicomnet-reading")
        from django.db.models.signals import post_delete, post_save, pre_save

        from xrayweb.audit.changes import snapshot
        from xrayweb.dicomnet.models import Destination

        pre_save.connect(
            snapshot(DESTINATION_FIELDS),
            sender=Destination,
            dispatch_uid="audit-dest-pre",
            weak=False,
        )
        post_save.connect(_destination_saved, sender=Destination, dispatch_uid="audit-dest")
        post_delete.connect(_destination_deleted, sender=Destination, dispatch_uid="audit-dest-rm")
