"""The audit chains verified on a schedule (Celery beat), not only by hand."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(queue="default")
def verify_chains() -> dict:
    from xrayweb.audit.services import chains_check

    check = chains_check(via="schedule")
    if not check.ok:
        logger.error("the audit trail was tampered with: %s", check.problem)
    return {"ok": check.ok, "problem": check.problem}
