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
