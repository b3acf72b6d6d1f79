"""The agreement dashboard counts not-assessable studies on their own, leaves them out of the
comparison, and shows where the model looked (cam_lung_fraction); the CSV carries both."""

import csv
import io
import json

import pytest

from xrayweb.review.agreement import AgreementSlice, agreement_dashboard, assessability_counts
from xrayweb.review.saliency import fraction_summary, saliency_distribution
from xrayweb.review.services import review_submit

REFUSED = {"assessable": False, "reasons": ["a colour photograph"], "scores": {}}


@pytest.fixture
def cases(predicted, radiologist):
    """Two readable studies (one right, one wrong), one the gate refused, one the gate
    refused but a radiologist read after all, one read as not diagnostic."""
    right = predicted({"normal": 0.9}, lung_mask="m/1.png", cam_lung_fraction=0.9)
    wrong = predicted({"covid19": 0.8}, lung_mask="m/2.png", cam_lung_fraction=0.2)
    refused = predicted({"covid19": 0.9}, gate=REFUSED, lung_mask="m/3.png", cam_lung_fraction=0.1)
    overruled = predicted({"normal": 0.9}, gate=REFUSED, lung_mask="m/4.png")
    unreadable = predicted({"covid19": 0.9}, lung_mask="m/5.png", cam_lung_fraction=0.95)
    review_submit(study=right, reviewer=radiologist, label="normal")
    review_submit(study=wrong, reviewer=radiologist, label="normal")
    review_submit(study=refused, reviewer=radiologist, assessability="not_diagnostic")
    review_submit(study=overruled, reviewer=radiologist, label="normal", assessability="assessable")
    review_submit(study=unreadable, reviewer=radiologist, assessability="not_diagnostic")
    return {"right": right, "wrong": wrong, "refused": refused, "overruled": overruled}


def test_not_readable_studies_are_counted_on_their_own_and_left_out_of_agreement(cases):
    stats = agreement_dashboard(where=AgreementSlice())
    assert stats["n"] == 3  # right, wrong and the one read after all
    assert stats["agreement"]["value"] == pytest.approx(2 / 3)
    assert sum(map(sum, stats["matrix"])) == 3
    gate = assessability_counts(where=AgreementSlice())
    assert {k: v for k, v in gate.items() if k != "reasons"} == {
        "n": 5,
        "unchecked": 0,
        "refused": 2,
        "overruled": 1,
        "not_diagnostic": 2,
        "missed": 1,  # the gate passed a film a radiologist found not diagnostic
        "excluded": 2,
    }
    assert gate["reasons"] == [("a colour photograph", 2)]


def test_quantiles_and_the_share_below_the_threshold():
    assert fraction_summary(values=[0.0, 1.0], empty=0, threshold=0.5)["q1"] == 0.25
    summary = fraction_summary(values=[0.9, 0.1, 0.4, 0.6, 0.8], empty=2, threshold=0.5)
    assert (summary["n"], summary["empty"], summary["below"]) == (5, 2, 2)
    assert (summary["q1"], summary["median"], summary["q3"]) == (0.4, 0.6, 0.8)
    assert summary["share_below"] == pytest.approx(0.4)
    assert fraction_summary(values=[], empty=1, threshold=0.5)["share_below"] is None


def test_the_saliency_distribution_groups_readable_predictions_by_class_and_version(cases):
    spread = saliency_distribution(where=AgreementSlice(), threshold=0.5)
    # Readable ones with a lung mask: right (0.9), wrong (0.2), overruled (empty heatmap).
    overall = spread["overall"]
    assert (overall["n"], overall["below"], overall["empty"]) == (2, 1, 1)
    by_class = {g["group"]: g for g in spread["by_class"]}
    assert (by_class["covid19"]["median"], by_class["covid19"]["below"]) == (0.2, 1)
    assert (by_class["normal"]["n"], by_class["normal"]["empty"]) == (1, 1)
    assert [(g["group"], g["n"]) for g in spread["by_version"]] == [("tiny", 2)]


def test_the_dashboard_shows_the_counts_the_saliency_and_links_the_worklist(
    client, radiologist, cases, settings
):
    settings.CAM_OUTSIDE_LUNGS_THRESHOLD = 0.5
    client.force_login(radiologist)
    html = client.get("/agreement/?model_version=tiny").content.decode()
    assert 'id="agreement-n">3<' in html
    assert 'id="gate-refused"><a href="/worklist/?assessability=not_assessable">2<' in html
    assert 'id="gate-not-diagnostic"><a href="/worklist/?assessability=not_diagnostic">2<' in html
    assert 'id="saliency-below">1<' in html and 'id="saliency-empty">1<' in html
    assert 'href="/worklist/?outside_lungs=yes&amp;model_version=tiny"' in html
    assert html.count('class="box"') == 3  # box plots: two classes and one version
    worklist = client.get("/worklist/?outside_lungs=yes&model_version=tiny").content.decode()
    assert f'data-study-id="{cases["wrong"].pk}"' in worklist
    assert f'data-study-id="{cases["right"].pk}"' not in worklist


def test_the_csv_export_carries_the_assessment_overrule_and_saliency(client, radiologist, cases):
    client.force_login(radiologist)
    response = client.get("/agreement/export.csv")
    rows = {
        int(r["study_id"]): r
        for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    }
    refused = rows[cases["refused"].pk]
    assert (refused["assessable"], refused["checked_by"]) == ("False", "tiny")
    assert json.loads(refused["reasons"]) == ["a colour photograph"]
    assert (refused["overrule"], refused["assessability"]) == ("not_diagnostic", "not_diagnostic")
    assert refused["cam_lung_fraction"] == "0.1"
    assert json.loads(refused["reviews"])[0]["assessability"] == "not_diagnostic"
    overruled = rows[cases["overruled"].pk]
    assert (overruled["overrule"], overruled["assessability"]) == ("assessable", "assessable")
    assert overruled["cam_lung_fraction"] == ""
    right = rows[cases["right"].pk]
    assert (right["assessable"], right["reasons"], right["overrule"]) == ("True", "[]", "")


def test_the_dashboards_earlier_address_redirects_for_good_with_its_query(client, radiologist):
    client.force_login(radiologist)
    page = client.get("/audit/?site=north&view=PA")
    assert (page.status_code, page["Location"]) == (301, "/agreement/?site=north&view=PA")
    export = client.get("/audit/export.csv")
    assert (export.status_code, export["Location"]) == (301, "/agreement/export.csv")


def test_the_weekly_trend_counts_each_study_in_its_week_as_a_row_by_row_count_does(
    radiologist, staff
):
    from collections import Counter

    from tests.factories import ModelVersionFactory, studies_generate
    from xrayweb.review.agreement import agreement_predictions, monday

    version = ModelVersionFactory(is_active=True)
    studies_generate(n=300, uploader=staff, readers=[radiologist], version=version)
    n, agree = Counter(), Counter()
    rows = agreement_predictions(where=AgreementSlice()).values_list(
        "study__created_at", "label", "study__final_label"
    )
    for at, label, final in rows:
        n[monday(at)] += 1
        agree[monday(at)] += label == final
    expected = [
        {"period": w.isoformat(), "n": n[w], "agreement": agree[w] / n[w]} for w in sorted(n)
    ]
    assert len(expected) > 20
    assert agreement_dashboard(where=AgreementSlice())["trend"] == expected
