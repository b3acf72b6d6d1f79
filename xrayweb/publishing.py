"""Publishing a Celery task where the state it acts on is already in the database: a broker
that is away never fails the request that published it. The row stays as it is (a study
"queued", a delivery "pending") and a periodic sweep (reconcile_studies, resend_overdue)
publishes it again later."""

import logging

logger = logging.getLogger(__name__)


def task_publish(task, *args, left_for: str) -> bool:
    """``task.delay(*args)``; with the broker down, log that ``left_for`` (what the sweep will
    pick up, e.g. "study 12") waits for it, and return False."""
    try:
        task.delay(*args)
    except Exception as exc:  # kombu raises many connection error types
        logger.warning("broker unavailable, %s left for the periodic sweep: %s", left_for, exc)
        return False
    return True
