"""Radiologists overrule the gate: "assessable after all" or "not diagnostic", stored
append-only like every reading; the study's state follows the latest final reading."""

import pytest

from xrayweb.audit.models import AppendOnlyError
from xrayweb.errors import ApplicationError
from xrayweb.inference.selectors import studies_gate_overrules
from xrayweb.inference.services.predictions import PredictionResult, predictions_record
from xrayweb.review.models import Review
from xrayweb.review.services import review_submit
from xrayweb.studies.models import ReviewState

REFUSED = {"assessable": False, "reasons": ["near-constant image"], "scores": {}}


@pytest.fixture
def readers(make_user):
    return [make_user("radiologist", f"reader{i}") for i in range(3)]


def test_labelling_a_refused_study_needs_an_explicit_answer(predicted, radiologist):
    study = predicted({"normal": 0.9}, gate=REFUSED)
    with pytest.raises(ApplicationError, match=r"near-constant image.*assessable after all"):
        review_submit(study=study, reviewer=radiologist, label="normal")
    with pytest.raises(ApplicationError, match="Unknown assessability"):
        review_submit(study=study, reviewer=radiologist, label="normal", assessability="maybe")
    assert not Review.objects.exists()


def test_assessable_after_all_is_stored_append_only_and_makes_the_study_assessable(
    predicted, radiologist
):
    study = predicted({"normal": 0.9}, gate=REFUSED)
    review = review_submit(
        study=study, reviewer=radiologist, label="covid19", assessability="assessable"
    )
    study.refresh_from_db()
    assert (study.assessability, study.assessability_overrule) == ("assessable", "assessable")
    assert study.final_label == "covid19" and review.agrees_with_model is False
    with pytest.raises(AppendOnlyError):
        review.save()
    with pytest.raises(AppendOnlyError):
        Review.objects.filter(pk=review.pk).update(assessability="")
    assert studies_gate_overrules() == {"assessable": [study], "not_diagnostic": []}


def test_not_diagnostic_carries_no_label_and_counts_neither_way(predicted, radiologist):
    study = predicted({"normal": 0.9})
    with pytest.raises(ApplicationError, match="carries no label"):
        review_submit(
            study=study, reviewer=radiologist, label="normal", assessability="not_diagnostic"
        )
    review = review_submit(study=study, reviewer=radiologist, assessability="not_diagnostic")
    study.refresh_from_db()
    assert (review.label, review.agrees_with_model) == ("", None)
    assert (study.review_state, study.final_label) == (ReviewState.FINAL, "")
    assert study.assessability == "not_diagnostic" and study.finalized_at is not None
    # A gate that passed it missed it: retrain sees it either way.
    assert studies_gate_overrules() == {"assessable": [], "not_diagnostic": [study]}


def test_the_state_follows_the_latest_final_reading(predicted, readers):
    study = predicted({"normal": 0.9}, gate=REFUSED)
    review_submit(study=study, reviewer=readers[0], assessability="not_diagnostic")
    amendment = review_submit(
        study=study, reviewer=readers[1], label="normal", assessability="assessable"
    )
    study.refresh_from_db()
    assert amendment.kind == Review.Kind.AMENDMENT
    assert (study.assessability, study.final_label) == ("assessable", "normal")
    review_submit(study=study, reviewer=readers[2], assessability="not_diagnostic")
    study.refresh_from_db()
    assert (study.assessability, study.final_label) == ("not_diagnostic", "")
    assert Review.objects.filter(study=study).count() == 3  # every answer kept


def test_an_overrule_outlives_a_new_prediction_of_the_study(predicted, radiologist):
    study = predicted({"normal": 0.9}, gate=REFUSED)
    review_submit(study=study, reviewer=radiologist, label="normal", assessability="assessable")
    study.refresh_from_db()
    probabilities = study.current_prediction.probabilities
    again = PredictionResult(study, "normal", probabilities, {}, {}, assessment=REFUSED)
    predictions_record(
        version=study.current_prediction.model_version,
        results=[again],
        cam_layers={},
        duration_ms=1,
    )
    study.refresh_from_db()
    assert study.current_prediction.assessable is False and study.assessability == "assessable"


def test_second_reads_agree_on_not_diagnostic_and_disagree_with_a_label(
    predicted, readers, settings
):
    settings.REVIEW_SECOND_READ = True
    both = predicted({"normal": 0.9})
    for reader in readers[:2]:
        review_submit(study=both, reviewer=reader, assessability="not_diagnostic")
    both.refresh_from_db()
    assert (both.review_state, both.assessability) == (ReviewState.FINAL, "not_diagnostic")
    split = predicted({"normal": 0.9}, gate=REFUSED)
    review_submit(study=split, reviewer=readers[0], assessability="not_diagnostic")
    review_submit(study=split, reviewer=readers[1], label="normal", assessability="assessable")
    split.refresh_from_db()
    assert split.review_state == ReviewState.ARBITRATION
    assert split.assessability == "not_assessable"  # nothing final yet: the gate's verdict
    review_submit(study=split, reviewer=readers[2], label="normal", assessability="assessable")
    split.refresh_from_db()
    assert (split.review_state, split.assessability) == (ReviewState.FINAL, "assessable")


def test_the_api_takes_the_answer_and_refuses_a_label_on_not_diagnostic(
    api_client, predicted, radiologist
):
    study = predicted({"normal": 0.9}, gate=REFUSED)
    api_client.force_authenticate(radiologist)
    url = f"/api/studies/{study.pk}/reviews/"
    bad = api_client.post(url, {"label": "normal", "assessability": "not_diagnostic"})
    assert bad.status_code == 400 and "no label" in bad.json()["detail"]
    unexplained = api_client.post(url, {"label": "normal"})
    assert unexplained.status_code == 400 and "not assessable" in unexplained.json()["detail"]
    made = api_client.post(url, {"assessability": "not_diagnostic"})
    assert made.status_code == 201
    assert (made.json()["label"], made.json()["assessability"]) == ("", "not_diagnostic")


def test_a_not_diagnostic_film_is_left_out_of_the_retraining_records(predicted, radiologist):
    from xrayweb.inference.retraining import reviewed_records

    read = predicted({"normal": 0.9})
    review_submit(study=read, reviewer=radiologist, label="covid19")
    unreadable = predicted({"normal": 0.9})
    review_submit(study=unreadable, reviewer=radiologist, assessability="not_diagnostic")
    records, fingerprint = reviewed_records()
    assert [r.label for r in records] == ["covid19"] and fingerprint["reviews"] == 1
