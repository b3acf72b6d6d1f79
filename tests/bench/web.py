"""Server time of the worklist, review and agreement pages over many studies, measured in a
throwaway test database (never the real one). The last line is ``p95_ms=<worst page's p95>``.

    python -m tests.bench.web [--studies 10000] [--repeat 30]

``make bench-web`` runs it on PostgreSQL (DATABASE_URL); without one it runs on SQLite."""

import argparse
import os
import statistics
import time


def _pages(study_id: int) -> dict[str, str]:
    return {
        "worklist": "/worklist/",
        "worklist page 40": "/worklist/?page=40",
        "worklist filtered": "/worklist/?disagree=yes&low_confidence=yes&site=north",
        "worklist uncertain unreviewed": "/worklist/?reviewed=no&sort=uncertain&per_page=100",
        "worklist search": "/worklist/?q=SYN-0-0012",
        "next case": "/worklist/next/",
        "review page": f"/studies/{study_id}/?reviewed=no&sort=uncertain",
        "agreement dashboard": "/agreement/",
        "agreement dashboard sliced": "/agreement/?site=children&view=PA&date_from=2000-01-01",
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _run(studies: int, repeat: int) -> dict[str, list[float]]:
    from django.test import Client

    from tests.factories import ModelVersionFactory, studies_generate
    from xrayweb.accounts.services import user_create_with_role

    uploader = user_create_with_role(username="bench-staff", password="x-Bench-1", role="staff")
    reader = user_create_with_role(
        username="bench-radiologist", password="x-Bench-1", role="radiologist"
    )
    from classifier import DEFAULT_BUNDLE, read_metadata
    from xrayweb.review.monitoring import monitor_check

    # The shipped bundle's drift reference, and the monitor's weeks and alarms stored by one
    # check over every study, as Celery beat leaves them: the agreement page's monitoring
    # section reads what the check stored.
    reference = read_metadata(DEFAULT_BUNDLE).gate["reference"]
    version = ModelVersionFactory(
        name="bench", sha256="0" * 64, is_active=True, drift_reference=reference
    )
    studies_generate(n=studies, uploader=uploader, readers=[reader], version=version)
    started = time.perf_counter()
    monitor_check()
    print(f"monitor check over {studies} studies: {time.perf_counter() - started:.2f} s")
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.web",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrayweb.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import override_settings

    vendor = connection.vendor
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        # The static files storage and DEBUG of a deployment: no query logging.
        with override_settings(DEBUG=False):
            results = _run(args.studies, args.repeat)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print(f"{args.studies} studies on {vendor}, {args.repeat} requests per page")
    print(f"{'page':<32}{'median ms':>10}{'p95 ms':>10}")
    for name, times in results.items():
        print(f"{name:<32}{statistics.median(times):>10.1f}{_percentile(times, 0.95):>10.1f}")
    worst = max(_percentile(times, 0.95) for times in results.values())
    print(f"p95_ms={worst:.1f}")


if __name__ == "__main__":
    main()
