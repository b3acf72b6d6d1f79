from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier import DEFAULT_BUNDLE
from xrayweb.errors import ApplicationError
from xrayweb.inference.services.registry import model_version_ensure_default


class Command(BaseCommand):
    help = "Make sure an active model version exists, registering the shipped bundle if needed."

    def add_arguments(self, parser):
        parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)

    def handle(self, *args, bundle: Path, **options):
        try:
            version = model_version_ensure_default(bundle_path=bundle)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Active model version: {version.name} ({version.sha256[:12]})")
