"""Database, broker, worker heartbeat and active model health, and the studies by status
(exit 1 if a part is down)."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from xrayweb.ops.health import health_check
from xrayweb.studies.models import Study


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, as_json: bool = False, **options):
        report = health_check()
        if report["database"]["ok"]:
            counts = Study.objects.values("status").annotate(n=Count("id")).order_by("status")
            report["studies"] = {row["status"]: row["n"] for row in counts}
        if as_json:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
        else:
            for part in ("database", "broker", "workers", "model"):
                state = report[part]
                detail = ", ".join(f"{k}={v}" for k, v in state.items() if k != "ok")
                self.stdout.write(f"{part:<9} {'up' if state['ok'] else 'DOWN':<5} {detail}")
            studies = report.get("studies", {})
            self.stdout.write(
                "studies   " + (", ".join(f"{k} {v}" for k, v in studies.items()) or "none")
            )
        if not report["ok"]:
            raise CommandError("a part is down")
