"""Conformal prediction sets on the web side: stored with each prediction (the 0.90 set's size as
an indexed column), worded on the review page, exposed by the API, and leading the "needs my
reading" order. Sets are made up here; classifier.conformal makes the real ones."""

import re

import pytest

from tests.factories import PredictionFactory, prediction_sets_for
from tests.xrayweb.gate_fakes import FakeAssessment, gate_says
from xrayweb.audit.models import AuditEvent
from xrayweb.inference import runtime
from xrayweb.inference.conformal import (
    level_odds,
    set_certainty,
    set_size,
    set_words,
    sets_trusted,
)
from xrayweb.review.selectors import next_case, worklist

ONE = {"0.90": ["normal"], "0.95": ["normal", "covid19"]}
TWO = {"0.90": ["covid19", "viral_pneumonia"], "0.95": ["covid19", "viral_pneumonia", "normal"]}
THREE = {
    "0.90": ["covid19", "viral_pneumonia", "bacterial_pneumonia"],
    "0.95": ["covid19", "viral_pneumonia", "bacterial_pneumonia", "normal"],
}
REFUSED = {"assessable": False, "reasons": ["looks like a CT slice"], "scores": {}}


@pytest.mark.parametrize(
    ("classes", "words", "certainty"),
    [
        (["normal"], "confident (normal)", "confident"),
        (["covid19", "viral_pneumonia"], "covid19 or viral pneumonia", "two classes"),
        (
            ["covid19", "viral_pneumonia", "normal"],
            "the model cannot tell (covid19, viral pneumonia, normal)",
            "cannot tell",
        ),
        ([], "no prediction set", None),
        (None, "no prediction set", None),
    ],
)
def test_a_set_is_worded_by_its_size_with_the_pages_class_labels(classes, words, certainty):
    assert set_words(classes) == words
    assert set_certainty(classes) == certainty


def test_coverage_levels_read_as_odds():
    assert (level_odds("0.90"), level_odds("0.95"), level_odds("0.80")) == (
        "9 in 10",
        "19 in 20",
        "4 in 5",
    )


def test_a_film_found_not_assessable_has_no_set_to_show_whatever_the_classifier_gave():
    assert sets_trusted(prediction_sets=TWO, assessable=False) == {}
    assert set_size(prediction_sets=TWO, assessable=False) is None
    assert set_size(prediction_sets=TWO, assessable=True) == 2
    assert set_size(prediction_sets=TWO, assessable=None) == 2  # predicted before the gate
    assert set_size(prediction_sets={}, assessable=True) is None
    assert set_size(prediction_sets={"0.95": ["normal"]}, assessable=True) is None


def test_recording_stores_the_sets_and_the_size_of_the_90_set(predicted):
    study = predicted({"covid19": 0.5, "viral_pneumonia": 0.4}, prediction_sets=TWO)
    prediction = study.current_prediction

    assert prediction.prediction_sets == TWO
    assert prediction.set_size == 2
    event = AuditEvent.objects.get(action=AuditEvent.Action.PREDICTION_RECORD, study=study)
    assert event.detail["set_size"] == 2


def test_a_prediction_without_calibration_stores_no_sets_and_a_null_size(predicted):
    prediction = predicted({"normal": 0.9}).current_prediction

    assert (prediction.prediction_sets, prediction.set_size) == ({}, None)


def test_a_refused_film_keeps_its_sets_for_the_audit_but_has_no_set_size(predicted):
    prediction = predicted({"normal": 0.9}, prediction_sets=TWO, gate=REFUSED).current_prediction

    assert prediction.prediction_sets == TWO
    assert (prediction.assessable, prediction.set_size) == (False, None)


def test_the_worker_stores_the_sets_the_classifier_gives(active_version, staff, png, monkeypatch):
    from classifier.predictor import Predictor
    from xrayweb.studies.services.ingest import study_create

    real = Predictor.predict

    def predict(self, images, *args, **kwargs):
        results = real(self, images, *args, **kwargs)
        for result in results:
            result.prediction_sets = THREE
        return results

    monkeypatch.setattr(Predictor, "predict", predict)
    gate_says(monkeypatch, FakeAssessment())
    study = study_create(user=staff, patient_id="P", accession="A", data=png(seed=1))

    (prediction,) = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)

    assert (prediction.prediction_sets, prediction.set_size) == (THREE, 3)


def test_the_worker_stores_no_sets_when_the_classifier_result_has_none(
    active_version, staff, png, monkeypatch
):
    from classifier.predictor import Predictor
    from xrayweb.studies.services.ingest import study_create

    real = Predictor.predict

    def predict(self, images, *args, **kwargs):
        results = real(self, images, *args, **kwargs)
        for result in results:  # as the classifier gave them before conformal sets
            result.__dict__.pop("prediction_sets", None)
        return results

    monkeypatch.setattr(Predictor, "predict", predict)
    study = study_create(user=staff, patient_id="P", accession="A", data=png(seed=2))

    (prediction,) = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)

    assert (prediction.prediction_sets, prediction.set_size) == ({}, None)


def _prediction_json(api_client, user, study) -> dict:
    api_client.force_authenticate(user)
    response = api_client.get(f"/api/studies/{study.pk}/")
    assert response.status_code == 200
    return response.json()["prediction"]


def test_the_api_gives_the_sets_the_90_set_and_its_certainty(api_client, radiologist, predicted):
    study = predicted({"covid19": 0.5, "viral_pneumonia": 0.4}, prediction_sets=TWO)

    body = _prediction_json(api_client, radiologist, study)

    assert body["prediction_sets"] == TWO
    assert body["prediction_set"] == ["covid19", "viral_pneumonia"]
    assert body["set_certainty"] == "two classes"
    listing = api_client.get(f"/api/studies/{study.pk}/predictions/").json()
    assert listing[0]["set_certainty"] == "two classes"


@pytest.mark.parametrize(
    ("sets", "gate"), [(None, None), (TWO, REFUSED)], ids=["uncalibrated", "not assessable"]
)
def test_the_api_gives_no_set_without_calibration_or_on_a_refused_film(
    api_client, radiologist, predicted, sets, gate
):
    study = predicted({"normal": 0.9}, prediction_sets=sets, gate=gate)

    body = _prediction_json(api_client, radiologist, study)

    assert (body["prediction_sets"], body["prediction_set"], body["set_certainty"]) == (
        {},
        None,
        None,
    )


def test_the_schema_documents_the_sets_and_their_nulls(api_client, staff):
    api_client.force_authenticate(staff)
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    prediction = schema["components"]["schemas"]["Prediction"]
    fields = prediction["properties"]

    assert fields["prediction_sets"]["type"] == "object"
    assert fields["prediction_sets"]["additionalProperties"]["items"]["type"] == "string"
    assert fields["prediction_set"]["type"] == "array"
    assert fields["prediction_set"]["nullable"] is True
    certainty = fields["set_certainty"]
    assert certainty.get("nullable") is True or {"type": "null"} in certainty.get("oneOf", [])
    assert "cannot tell" in str(schema["components"]["schemas"])
    assert {"prediction_sets", "prediction_set", "set_certainty"} <= set(prediction["required"])


def _side(client, study, query: str = "") -> str:
    page = client.get(f"/studies/{study.pk}/{query}").content.decode()
    return page[page.index("<h2>Model prediction</h2>") : page.index("<h2>Your reading</h2>")]


def test_the_review_page_words_the_90_and_95_sets_and_explains_them(client, radiologist, predicted):
    client.force_login(radiologist)
    study = predicted({"covid19": 0.5, "viral_pneumonia": 0.4}, prediction_sets=TWO)

    side = _side(client, study)

    assert re.search(
        r'id="prediction-set-90" data-certainty="two classes"><strong>covid19 or viral pneumonia<',
        side,
    )
    assert "the model cannot tell (covid19, viral pneumonia, normal)" in side
    assert "the classes the model cannot rule out; 9 in 10 such sets contain the true label" in side
    assert "(19 in 20 for the 95% set) on new patients of the hospitals" in side
    assert "fewer at hospitals it never saw" in side


@pytest.mark.parametrize(("sets", "words"), [(ONE, "confident (normal)"), (THREE, "cannot tell")])
def test_the_review_page_says_confident_or_cannot_tell(client, radiologist, predicted, sets, words):
    client.force_login(radiologist)
    study = predicted({sets["0.90"][0]: 0.8}, prediction_sets=sets)

    assert words in _side(client, study)


def test_the_review_page_says_plainly_when_there_is_no_set(client, radiologist, predicted):
    client.force_login(radiologist)
    study = predicted({"normal": 0.9})

    side = _side(client, study)

    assert "no prediction set: this model has no conformal calibration" in side
    assert "None" not in side and "nan" not in side.lower()


def test_a_revealed_refused_film_shows_no_set_and_says_why(client, radiologist, predicted):
    client.force_login(radiologist)
    study = predicted({"normal": 0.9}, prediction_sets=TWO, gate=REFUSED)

    side = _side(client, study, "?reveal=1")

    assert "no prediction set: the film is not assessable" in side
    assert "normal or" not in side and "covid19 or" not in side


@pytest.fixture
def sized(predicted):
    """Four unread studies, oldest first: no set (and the least confident), then sets of one,
    three and two classes."""
    return {
        "none": predicted({"normal": 0.3}),
        "one": predicted({"normal": 0.95}, prediction_sets=ONE),
        "three": predicted({"covid19": 0.4, "normal": 0.35}, prediction_sets=THREE),
        "two": predicted({"covid19": 0.7, "viral_pneumonia": 0.3}, prediction_sets=TWO),
    }


def _order(params: dict, user) -> list[int]:
    filters = worklist(params=params, user=user)
    assert filters.is_valid(), filters.errors
    return list(filters.qs.values_list("pk", flat=True))


def test_needs_my_reading_puts_the_widest_sets_first_then_the_usual_order(sized, radiologist):
    pk = {name: study.pk for name, study in sized.items()}

    assert _order({"needs_me": "yes"}, radiologist) == [
        pk["three"],
        pk["two"],
        pk["one"],
        pk["none"],
    ]
    # A chosen sort orders studies of the same set size; without "needs my reading" sets are
    # not looked at.
    assert _order({}, radiologist) == [pk["two"], pk["three"], pk["one"], pk["none"]]


def test_under_needs_my_reading_a_chosen_sort_comes_after_the_set_size(
    sized, radiologist, predicted
):
    other_two = predicted({"covid19": 0.55, "viral_pneumonia": 0.45}, prediction_sets=TWO)
    pk = {name: study.pk for name, study in sized.items()}

    order = _order({"needs_me": "yes", "sort": "uncertain"}, radiologist)

    assert order == [pk["three"], other_two.pk, pk["two"], pk["one"], pk["none"]]


def test_next_case_serves_the_widest_set_before_the_least_confident(sized, radiologist):
    assert next_case(user=radiologist) == sized["three"]


def test_the_worklist_says_the_widest_sets_come_first_when_needing_my_reading(
    client, radiologist, sized
):
    client.force_login(radiologist)

    assert 'id="widest-set-first"' in client.get("/worklist/?needs_me=yes").content.decode()
    assert 'id="widest-set-first"' not in client.get("/worklist/").content.decode()


def test_the_factories_give_generated_studies_sets_of_every_size(db):
    sets = prediction_sets_for({"covid19": 0.5, "viral_pneumonia": 0.42, "normal": 0.08})
    built = PredictionFactory.build(prediction_sets=sets, assessable=True)

    assert sets == {
        "0.90": ["covid19", "viral_pneumonia"],
        "0.95": ["covid19", "viral_pneumonia", "normal"],
    }
    assert built.set_size == 2
    assert PredictionFactory.build().set_size is None
