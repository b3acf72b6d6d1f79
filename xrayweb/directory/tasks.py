"""The directory check on a schedule (Celery beat), so that someone removed from the directory
loses access here within DIRECTORY_CHECK_EVERY_SECONDS, sessions and API tokens included."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(queue="default")
def check_directory() -> dict:
    from xrayweb.directory.services import DirectoryUnreachable, directory_check

    try:
        return directory_check()
    except DirectoryUnreachable as error:
        logger.error("directory check skipped: the directory could not be reached (%s)", error)
        return {"unreachable": str(error)}
