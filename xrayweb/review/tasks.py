"""The drift monitor on a schedule (Celery beat, every MONITOR_CHECK_EVERY_SECONDS)."""

from celery import shared_task


@shared_task(queue="default")
def check_drift() -> dict:
    from xrayweb.review.monitoring import monitor_check

    return monitor_check()
