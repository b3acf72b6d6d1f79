"""Server time of the worklist, review and audit pages over many studies, measured in a
throwaway test database (never the real one). The last line is ``p95_ms=<worst page's p95>``."""

import statistics
import time

from django.core.management.base import BaseCommand
from django.db import connection
from django.test import Client
from django.test.utils import override_settings

from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference.models import ModelVersion
from xrayweb.review.synthetic import studies_generate

CLASSES = ["covid19", "bacterial_pneumonia", "viral_pneumonia", "normal"]


def _pages(study_id: int) -> dict[str, str]:
    return {
        "worklist": "/worklist/",
        "worklist page 40": "/worklist/?page=40",
        "worklist filtered": "/worklist/?disagree=yes&low_confidence=yes&site=north",
        "worklist uncertain unreviewed": "/worklist/?reviewed=no&sort=uncertain&per_page=100",
        "worklist search": "/worklist/?q=SYN-0-0012",
        "next case": "/worklist/next/",
        "review page": f"/studies/{study_id}/?reviewed=no&sort=uncertain",
        "audit dashboard": "/audit/",
        "audit dashboard sliced": "/audit/?site=children&view=PA&date_from=2000-01-01",
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--studies", type=int, default=10_000)
        parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")

    def handle(self, *args, studies: int, repeat: int, **options):
        vendor = connection.vendor
        old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
        try:
            # The static files storage and DEBUG of a deployment: no query logging.
            with override_settings(DEBUG=False):
                results = self._run(studies, repeat)
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
        self.stdout.write(f"{studies} studies on {vendor}, {repeat} requests per page")
        self.stdout.write(f"{'page':<32}{'median ms':>10}{'p95 ms':>10}")
        for name, times in results.items():
            self.stdout.write(
                f"{name:<32}{statistics.median(times):>10.1f}{_percentile(times, 0.95):>10.1f}"
            )
        worst = max(_percentile(times, 0.95) for times in results.values())
        self.stdout.write(f"p95_ms={worst:.1f}")

    def _run(self, studies: int, repeat: int) -> dict[str, list[float]]:
        uploader = user_create_with_role(username="bench-staff", password="x-Bench-1", role="staff")
        reader = user_create_with_role(
            username="bench-radiologist", password="x-Bench-1", role="radiologist"
        )
        version = ModelVersion.objects.create(
            name="bench", bundle_path="-", sha256="0" * 64, classes=CLASSES, members=[]
        )
        studies_generate(n=studies, uploader=uploader, readers=[reader], version=version)
        client = Client()
        client.force_login(reader)
        study_id = version.prediction_set.order_by("confidence").first().study_id
        results = {}
        for name, url in _pages(study_id).items():
            client.get(url)  # warm caches and connections once
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - start) * 1000)
                if response.status_code not in (200, 302):
                    raise RuntimeError(f"{url} answered {response.status_code}")
            results[name] = times
        return results
