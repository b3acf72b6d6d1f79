"""Worklist filters, sorting, search, pagination, next case and J/K neighbours."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from xrayweb.review.models import Review
from xrayweb.review.selectors import next_case, worklist, worklist_neighbours
from xrayweb.review.services import review_submit
from xrayweb.studies.models import Study


@pytest.fixture
def cases(predicted, radiologist):
    """Five studies with known properties (confidence, members, site, reviews, dates)."""
    split = {"mobilenet": {"covid19": 0.9, "normal": 0.1}, "vgg": {"normal": 0.6, "covid19": 0.4}}
    s = {
        "confident": predicted({"normal": 0.95}, site="north", view="PA", patient_id="ALPHA-1"),
        "uncertain": predicted({"covid19": 0.40, "normal": 0.35}, site="south"),
        "split": predicted({"normal": 0.55, "covid19": 0.45}, members=split),
        "agreed": predicted({"covid19": 0.9}, accession="ACC-AGREED"),
        "corrected": predicted({"viral_pneumonia": 0.7}),
    }
    review_submit(study=s["agreed"], reviewer=radiologist, label="covid19")
    review_submit(study=s["corrected"], reviewer=radiologist, label="bacterial_pneumonia")
    old = timezone.now() - timedelta(days=30)
    Study.objects.filter(pk=s["confident"].pk).update(created_at=old)
    return s


def _ids(params: dict) -> set[int]:
    filters = worklist(params=params)
    assert filters.is_valid(), filters.errors
    return set(filters.qs.values_list("pk", flat=True))


def test_each_filter_selects_the_expected_studies(cases):
    pk = {name: study.pk for name, study in cases.items()}
    everything = set(pk.values())
    assert _ids({}) == everything
    assert _ids({"reviewed": "yes"}) == {pk["agreed"], pk["corrected"]}
    assert _ids({"reviewed": "no"}) == everything - {pk["agreed"], pk["corrected"]}
    assert _ids({"disagree": "yes"}) == {pk["corrected"]}
    assert _ids({"disagree": "no"}) == {pk["agreed"]}
    assert _ids({"low_confidence": "yes"}) == {pk["uncertain"], pk["split"]}
    assert _ids({"members_disagree": "yes"}) == {pk["split"]}
    assert _ids({"status": "done"}) == everything
    assert _ids({"status": "queued"}) == set()
    assert _ids({"model_version": "tiny"}) == everything
    assert _ids({"predicted": "covid19"}) == {pk["uncertain"], pk["agreed"]}
    assert _ids({"confirmed": "bacterial_pneumonia"}) == {pk["corrected"]}
    assert _ids({"site": "north"}) == {pk["confident"]}
    assert _ids({"view": "PA"}) == {pk["confident"]}
    today = timezone.now().date()
    assert _ids({"date_to": str(today - timedelta(days=10))}) == {pk["confident"]}
    assert _ids({"date_from": str(today - timedelta(days=1))}) == everything - {pk["confident"]}
    assert _ids({"q": "alpha"}) == {pk["confident"]}
    assert _ids({"q": "ACC-AGREED"}) == {pk["agreed"]}
    assert _ids({"review_state": "final"}) == {pk["agreed"], pk["corrected"]}


def test_sorting_and_default_order(cases):
    order = list(worklist(params={"sort": "uncertain"}).qs.values_list("pk", flat=True))
    assert order[:2] == [cases["uncertain"].pk, cases["split"].pk]
    default = list(worklist(params={}).qs.values_list("pk", flat=True))
    reviewed = {cases["agreed"].pk, cases["corrected"].pk}
    assert set(default[-2:]) == reviewed  # unreviewed first


def test_bad_filter_values_give_a_400_with_the_reason(client, radiologist, cases):
    client.force_login(radiologist)
    response = client.get("/worklist/?status=exploded&date_from=soon")
    assert response.status_code == 400
    assert "status" in response.content.decode() and "date_from" in response.content.decode()


def test_pages_and_page_size_are_capped(client, radiologist, cases):
    client.force_login(radiologist)
    page = client.get("/worklist/?per_page=2&page=2").content.decode()
    assert len(re.findall(r"<tr data-study-id=", page)) == 2
    assert "page 2 of 3" in page
    big = client.get("/worklist/?per_page=100000").content.decode()
    assert len(re.findall(r"<tr data-study-id=", big)) == 5


def test_next_case_serves_the_most_uncertain_unread_study(client, radiologist, cases):
    assert next_case(user=radiologist) == cases["uncertain"]
    client.force_login(radiologist)
    response = client.get("/worklist/next/")
    assert response.status_code == 302
    assert response["Location"].startswith(f"/studies/{cases['uncertain'].pk}/")
    review_submit(study=cases["uncertain"], reviewer=radiologist, label="covid19")
    assert next_case(user=radiologist) == cases["split"]


def test_next_case_with_second_read_skips_studies_this_reader_already_read(
    cases, radiologist, make_user, settings
):
    settings.REVIEW_SECOND_READ = True
    review_submit(study=cases["uncertain"], reviewer=radiologist, label="covid19")
    assert next_case(user=radiologist) == cases["split"]
    other = make_user("radiologist", "other")
    assert next_case(user=other) == cases["uncertain"]
    mine = worklist(params={"needs_me": "yes", "sort": "uncertain"}, user=radiologist).qs
    theirs = worklist(params={"needs_me": "yes", "sort": "uncertain"}, user=other).qs
    assert cases["uncertain"] not in mine and cases["uncertain"] == theirs.first()
    assert cases["agreed"] not in theirs  # final studies need nobody's reading


def test_j_and_k_follow_the_worklist_order_with_its_filters(client, radiologist, cases):
    qs = worklist(params={"sort": "uncertain"}).qs
    ids = list(qs.values_list("pk", flat=True))
    assert worklist_neighbours(qs=qs, study_id=ids[1]) == (ids[0], ids[2])
    assert worklist_neighbours(qs=qs, study_id=ids[0]) == (None, ids[1])
    client.force_login(radiologist)
    page = client.get(f"/studies/{ids[1]}/?sort=uncertain").content.decode()
    assert f'id="next-case" href="/studies/{ids[2]}/?sort=uncertain"' in page
    assert f'id="previous-case" href="/studies/{ids[0]}/?sort=uncertain"' in page


def test_review_page_shows_member_and_ensemble_probabilities_and_window_controls(
    client, radiologist, cases
):
    client.force_login(radiologist)
    page = client.get(f"/studies/{cases['split'].pk}/").content.decode()
    assert "<th>ensemble</th><th>mobilenet</th><th>vgg</th>" in page
    assert "members disagree" in page
    for control in ('id="window-width"', 'id="window-level"', 'id="xray-canvas"', "<kbd>1</kbd>"):
        assert control in page
    assert Review.objects.filter(study=cases["split"]).count() == 0


def test_the_api_list_takes_the_worklist_filters(client, radiologist, cases):
    client.force_login(radiologist)
    body = client.get("/api/studies/?low_confidence=yes&sort=uncertain").json()
    assert [s["id"] for s in body["results"]] == [cases["uncertain"].pk, cases["split"].pk]
    bad = client.get("/api/studies/?reviewed=perhaps")
    assert bad.status_code == 400 and "reviewed" in bad.json()["detail"]


def test_filter_choices_are_read_for_the_page_and_never_for_the_status_polls(
    client, staff, active_version
):
    """Labels from the active bundle, sites seen: choices on the page, a 400 for a value
    outside them, and no extra query on GET /api/studies/?ids=… (polled every 2 s)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.xrayweb.conftest import png_bytes
    from xrayweb.studies.services.ingest import study_create

    study = study_create(user=staff, patient_id="P", accession="A", data=png_bytes(), site="north")
    client.force_login(staff)
    with CaptureQueriesContext(connection) as poll:
        assert client.get(f"/api/studies/?ids={study.pk}").status_code == 200
    assert not [q for q in poll.captured_queries if "DISTINCT" in q["sql"].upper()]
    page = client.get("/worklist/?site=north&predicted=normal").content.decode()
    assert '<option value="north" selected>north</option>' in page
    assert '<option value="viral_pneumonia">viral pneumonia</option>' in page
    assert client.get("/worklist/?site=nowhere").status_code == 400
