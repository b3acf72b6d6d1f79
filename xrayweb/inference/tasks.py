"""Thin Celery tasks: take a primary key, call a service, own the failure policy.

This module is imported by the web process (to enqueue), so it must not import torch: the
worker-only runtime is imported inside the task body.
"""

import logging
import random

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections
from django.db.models import Q

from xrayweb.inference.services.claims import studies_reconcile, study_mark_failed
from xrayweb.publishing import task_publish
from xrayweb.studies.models import Study

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    queue="inference",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # bounded by the study's attempts instead (INFERENCE_MAX_ATTEMPTS)
)
def predict_study(self, study_id: int) -> None:
    """Predict this study, and any other queued ones up to the batch limit, in one batch.

    A transient error (database, broker, device) retries with exponential backoff; the study
    fails with the reason after INFERENCE_MAX_ATTEMPTS claims. A permanent one (no model)
    fails it at once."""
    from xrayweb.inference.runtime import InferenceError, prediction_batch_run

    try:
        prediction_batch_run(
            study_id=study_id,
            max_studies=settings.INFERENCE_STUDIES_PER_TASK,
            token=self.request.id or "",
        )
    except InferenceError as exc:
        logger.exception("inference cannot run for study %s", study_id)
        study_mark_failed(study_id=study_id, reason=str(exc))
        raise
    except Exception as exc:
        logger.warning("inference failed for study %s (%s); will retry", study_id, exc)
        if isinstance(exc, (InterfaceError, OperationalError)):
            close_old_connections()  # a dropped database connection is reopened on the retry
        if not _study_pending(study_id, token=self.request.id or ""):
            return  # failed for good after its attempts, or another worker has it now
        if self.request.retries < settings.INFERENCE_MAX_ATTEMPTS:
            backoff = settings.INFERENCE_RETRY_BACKOFF * 2**self.request.retries
            raise self.retry(exc=exc, countdown=backoff + random.uniform(0, backoff / 2)) from exc
        study_mark_failed(study_id=study_id, reason=f"{type(exc).__name__}: {exc}")
        raise


def _study_pending(study_id: int, *, token: str) -> bool:
    """Queued, or still "running" under this task's own claim (its release failed)."""
    mine = Q(status=Study.Status.RUNNING, claimed_by=token) if token else Q(pk__in=[])
    try:
        return Study.objects.filter(Q(status=Study.Status.QUEUED) | mine, pk=study_id).exists()
    except DatabaseError:
        return True  # the database is down: retry, the claim decides later


def study_enqueue(study_id: int) -> None:
    """Publish the inference task; if the broker is down, the study stays "queued" and the
    reconciler sends it later. An upload never fails because the broker is away."""
    task_publish(predict_study, study_id, left_for=f"study {study_id}")


@shared_task(queue="default")
def reconcile_studies() -> dict:
    """Periodic (Celery beat): requeue studies stuck in "queued" or "running"."""
    result = studies_reconcile(
        queued_seconds=settings.RECONCILE_QUEUED_SECONDS,
        lease_seconds=settings.INFERENCE_LEASE_SECONDS,
        max_attempts=settings.INFERENCE_MAX_ATTEMPTS,
    )
    for pk in result["overdue"]:
        study_enqueue(pk)
    return {"requeued_running": result["requeued_running"], "enqueued": len(result["overdue"])}


@shared_task(
    queue="training",
    acks_late=True,
    time_limit=settings.TRAINING_TIME_LIMIT,
    soft_time_limit=settings.TRAINING_TIME_LIMIT - 60,
)
def retrain_model(job: dict) -> str:
    """Retraining on a worker of the 'training' queue (where the GPU is)."""
    from xrayweb.inference.retraining import model_retrain_job

    return model_retrain_job(job).name
