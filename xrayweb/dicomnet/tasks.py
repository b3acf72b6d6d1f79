"""Thin Celery tasks for result delivery, on the "default" queue (no model needed)."""

import logging
import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from xrayweb.dicomnet.sending import DeliveryPending, delivery_attempt
from xrayweb.dicomnet.services import deliveries_backfill, deliveries_overdue
from xrayweb.publishing import task_publish

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    queue="default",
    acks_late=True,
    max_retries=None,  # bounded by DICOM_DELIVERY_MAX_ATTEMPTS instead
    # An object is built and sent within a few timeouts; a task stuck past that is killed,
    # and its attempt (counted before sending) is not lost.
    time_limit=10 * settings.DICOM_DELIVERY_TIMEOUT + 60,
)
def deliver(self, delivery_id: int) -> str:
    """Send one result object; a peer that is down is tried again with exponential backoff
    (jittered, capped) until the service gives up after DICOM_DELIVERY_MAX_ATTEMPTS."""
    try:
        return delivery_attempt(delivery_id=delivery_id).status
    except DeliveryPending as exc:
        backoff = min(
            settings.DICOM_DELIVERY_BACKOFF * 2**self.request.retries,
            settings.DICOM_DELIVERY_BACKOFF_MAX,
        )
        raise self.retry(exc=exc, countdown=backoff + random.uniform(0, backoff / 4)) from exc


def delivery_enqueue(delivery_id: int) -> None:
    """Publish the delivery task; with the broker down the delivery stays pending and the
    periodic ``resend_overdue`` sends it later."""
    task_publish(deliver, delivery_id, left_for=f"delivery {delivery_id}")


@shared_task(queue="default")
def resend_overdue() -> int:
    """Periodic (Celery beat): deliveries the signals failed to make in the last day are
    made, and pending ones whose task was lost get a fresh one."""
    deliveries_backfill(since=timedelta(days=1))
    wait = settings.DICOM_DELIVERY_BACKOFF_MAX * 1.25 + 12 * settings.DICOM_DELIVERY_TIMEOUT
    overdue = deliveries_overdue(older_than=timedelta(seconds=wait))
    for pk in overdue:
        delivery_enqueue(pk)
    return len(overdue)
