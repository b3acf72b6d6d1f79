"""Thin Celery tasks: take a primary key, call a service, own the failure policy.

This module is imported by the web process (to enqueue), so it must not import torch: the
worker-only runtime is imported inside the task body.
"""

import logging

from celery import shared_task
from django.conf import settings

from xrayweb.inference.services import study_mark_failed

logger = logging.getLogger(__name__)


@shared_task(queue="inference", acks_late=True)
def predict_study(study_id: int) -> None:
    """Predict this study, and any other queued ones up to the batch limit, in one batch."""
    from xrayweb.inference.runtime import prediction_batch_run

    try:
        prediction_batch_run(study_id=study_id, max_studies=settings.INFERENCE_STUDIES_PER_TASK)
    except Exception as exc:
        # Record the failure on the study so it never stays "running", then let Celery see it.
        logger.exception("inference failed for study %s", study_id)
        study_mark_failed(study_id=study_id, reason=f"{type(exc).__name__}: {exc}")
        raise


@shared_task(queue="training", acks_late=True, time_limit=6 * 3600, soft_time_limit=6 * 3600 - 60)
def retrain_model(job: dict) -> str:
    """Retraining on a worker of the 'training' queue (where the GPU is)."""
    from xrayweb.inference.retraining import model_retrain_job

    return model_retrain_job(job).name
