from django.core.management.base import BaseCommand

from xrayweb.studies.services.ingest import thumbnails_backfill


class Command(BaseCommand):
    help = "Make the worklist thumbnail of every study stored without one."

    def handle(self, *args, verbosity: int = 1, **options) -> None:
        made = thumbnails_backfill()
        if verbosity:
            self.stdout.write(f"{made} thumbnails made")
