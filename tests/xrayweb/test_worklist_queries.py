"""The worklist, review page and agreement dashboard run a fixed number of queries, whatever the
page size or the number of studies. `make test` runs this module on SQLite and again on
PostgreSQL with 10,000 studies."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import studies_generate
from xrayweb.studies.models import Study

LARGE = 10_000


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code in (200, 302), (url, response.status_code)
    return len(context)


def _pages(study_id: int, per_page: int) -> dict[str, str]:
    return {
        "worklist": f"/worklist/?per_page={per_page}",
        "worklist filtered": f"/worklist/?per_page={per_page}&reviewed=yes&sort=uncertain",
        "worklist disagree": f"/worklist/?per_page={per_page}&disagree=yes&members_disagree=no",
        "needs my reading": f"/worklist/?per_page={per_page}&needs_me=yes&sort=uncertain",
        "review page": f"/studies/{study_id}/?per_page={per_page}&sort=uncertain",
        "next case": "/worklist/next/",
        "agreement dashboard": "/agreement/",
        "agreement sliced": (
            "/agreement/?site=north&view=PA&model_version=tiny&date_from=2000-01-01"
        ),
    }


@pytest.mark.slow
def test_query_counts_do_not_depend_on_page_size_or_number_of_studies(
    client, radiologist, staff, active_version, django_assert_num_queries
):
    client.force_login(radiologist)
    studies_generate(n=120, uploader=staff, readers=[radiologist], version=active_version)
    study_id = Study.objects.order_by("pk").first().pk
    small = {name: _queries(client, url) for name, url in _pages(study_id, 10).items()}
    assert small == {name: _queries(client, url) for name, url in _pages(study_id, 100).items()}

    studies_generate(n=LARGE, uploader=staff, readers=[radiologist], version=active_version, seed=1)
    assert Study.objects.count() == LARGE + 120
    for name, url in _pages(study_id, 100).items():
        with django_assert_num_queries(small[name]):
            client.get(url)
    print(f"query counts on {connection.vendor}: {small}")
