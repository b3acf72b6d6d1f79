"""Requeue studies stuck in "queued" or "running" past their deadline (also runs every
minute under Celery beat as xrayweb.inference.tasks.reconcile_studies)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from xrayweb.inference.services.claims import studies_reconcile
from xrayweb.inference.tasks import study_enqueue


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--queued-seconds", type=int, default=settings.RECONCILE_QUEUED_SECONDS)

    def handle(self, *args, queued_seconds: int, **options):
        result = studies_reconcile(
            queued_seconds=queued_seconds,
            lease_seconds=settings.INFERENCE_LEASE_SECONDS,
            max_attempts=settings.INFERENCE_MAX_ATTEMPTS,
        )
        for pk in result["overdue"]:
            study_enqueue(pk)
        self.stdout.write(
            f"requeued {result['requeued_running']} running past the lease; "
            f"enqueued {len(result['overdue'])} queued studies"
        )
