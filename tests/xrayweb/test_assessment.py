""" "Not assessable": the worker stores the gate's verdict merged with the DICOM header's scope,
and the API shows it with the effective state after any radiologist's overrule."""

from tests.xrayweb.dicom_corpus import dataset, source_image, to_bytes
from tests.xrayweb.gate_fakes import FakeAssessment, gate_says
from xrayweb.inference import runtime
from xrayweb.inference.models import Prediction
from xrayweb.inference.services.predictions import LOW_CONFIDENCE_FLAG, assessment_build
from xrayweb.review.services import review_submit
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create

CT_GATE = FakeAssessment(False, ["looks like a CT slice"], {"frontal_cxr": 0.02, "distance": None})


def test_the_header_scope_blocks_the_diagnosis_and_its_reasons_come_first(settings):
    settings.REVIEW_LOW_CONFIDENCE = 0.6
    study = Study(modality="CT", view="LL", body_part="KNEE")
    gate = {"assessable": False, "reasons": ["looks like a CT slice"], "scores": {"x": 0.1}}
    built = assessment_build(study=study, gate=gate, confidence=0.9, checked_by="v1")
    assert built["assessable"] is False
    assert built["reasons"] == [
        "modality CT is not a projection radiograph",
        "view LL is lateral, not frontal",
        "body part KNEE is not the chest",
        "looks like a CT slice",
    ]
    assert (built["scores"], built["checked_by"], built["flags"]) == ({"x": 0.1}, "v1", [])
    # The gate passing it does not help: the header alone refuses.
    passed = assessment_build(
        study=study, gate={"assessable": True, "reasons": []}, confidence=0.9, checked_by="v1"
    )
    assert passed["assessable"] is False and len(passed["reasons"]) == 3


def test_low_confidence_is_a_flag_never_a_refusal_and_bad_scores_become_null():
    import numpy as np

    gate = {"assessable": True, "reasons": [], "scores": {"a": np.float32(0.5), "b": np.nan}}
    built = assessment_build(study=Study(), gate=gate, confidence=0.3, checked_by="v1")
    assert built["assessable"] is True and built["reasons"] == []
    assert built["flags"] == [LOW_CONFIDENCE_FLAG]
    assert built["scores"] == {"a": 0.5, "b": None}  # JSON: no numpy, no NaN


def test_a_study_the_gate_refuses_is_done_with_the_full_output_kept(
    active_version, staff, sample_images, monkeypatch
):
    gate_says(monkeypatch, CT_GATE)
    study = study_create(
        user=staff, patient_id="P", accession="A", data=sample_images[0].read_bytes()
    )
    prediction = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)[0]
    study.refresh_from_db()
    assert study.status == Study.Status.DONE
    assert study.assessability == Study.Assessability.NOT_ASSESSABLE
    assert prediction.assessable is False
    assert prediction.assessment["reasons"] == ["looks like a CT slice"]
    assert prediction.assessment["checked_by"] == active_version.name
    assert prediction.assessment["scores"] == {"frontal_cxr": 0.02, "distance": None}
    # Kept for the audit: label, probabilities and heatmaps.
    assert prediction.label in active_version.classes and set(prediction.heatmaps) >= {"fused"}


def test_a_ct_dicom_is_not_assessable_from_its_header_even_when_the_gate_passes_it(
    active_version, staff, sample_images, monkeypatch
):
    gate_says(monkeypatch, FakeAssessment(True))
    data = to_bytes(dataset(source_image(sample_images[0], width=96), bits=12, Modality="CT"))
    study = study_create(user=staff, patient_id="", accession="", data=data, filename="ct.dcm")
    prediction = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)[0]
    study.refresh_from_db()
    assert study.assessability == Study.Assessability.NOT_ASSESSABLE
    assert prediction.assessment["reasons"] == ["modality CT is not a projection radiograph"]


def test_the_api_gives_the_assessment_and_the_state_after_an_overrule(
    api_client, staff, radiologist, predicted, png
):
    queued = study_create(user=staff, patient_id="Q", accession="Q", data=png(seed=99))
    gate = {"assessable": False, "reasons": ["a colour photograph"], "scores": {"chroma": 0.4}}
    study = predicted({"covid19": 0.55}, gate=gate)
    api_client.force_authenticate(staff)
    assert api_client.get(f"/api/studies/{queued.pk}/").json()["assessment"] is None
    body = api_client.get(f"/api/studies/{study.pk}/").json()
    assert body["assessment"] == {
        "assessable": False,
        "reasons": ["a colour photograph"],
        "scores": {"chroma": 0.4},
        "checked_by": "tiny",
        "flags": [LOW_CONFIDENCE_FLAG],
        "overruled": None,
        "state": "not_assessable",
    }
    assert body["prediction"]["label"] == "covid19"  # the API keeps the output, for the audit
    review_submit(study=study, reviewer=radiologist, label="normal", assessability="assessable")
    after = api_client.get(f"/api/studies/{study.pk}/").json()["assessment"]
    assert (after["assessable"], after["overruled"], after["state"]) == (
        False,
        "assessable",
        "assessable",
    )


def test_the_study_list_filters_on_the_state(api_client, staff, predicted):
    refused = predicted({"normal": 0.9}, gate={"assessable": False, "reasons": ["blank"]})
    predicted({"normal": 0.9})
    api_client.force_authenticate(staff)
    body = api_client.get("/api/studies/?assessability=not_assessable").json()
    assert [s["id"] for s in body["results"]] == [refused.pk]
    bad = api_client.get("/api/studies/?assessability=maybe")
    assert bad.status_code == 400 and "assessability" in bad.json()["errors"]


def test_the_schema_documents_the_assessment_and_the_reading_answer(api_client, staff):
    api_client.force_authenticate(staff)
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schemas = schema["components"]["schemas"]
    field = schemas["Study"]["properties"]["assessment"]
    assert field["allOf"] == [{"$ref": "#/components/schemas/Assessment"}] and field["nullable"]
    assessment = schemas["Assessment"]["properties"]
    assert set(assessment) == {
        "assessable",
        "reasons",
        "scores",
        "checked_by",
        "flags",
        "overruled",
        "state",
    }
    state = schemas[assessment["state"]["allOf"][0]["$ref"].rsplit("/", 1)[-1]]
    assert state["enum"] == ["unchecked", "assessable", "not_assessable", "not_diagnostic"]
    assert assessment["assessable"]["nullable"] and assessment["overruled"]["nullable"]
    create = schemas["ReviewCreateRequest"]
    assert "assessability" in create["properties"] and "label" not in create.get("required", [])
    assert "assessable" in schemas["Prediction"]["properties"]


def test_a_prediction_made_before_the_gate_shows_its_label_on_the_upload_page(
    client, staff, predicted
):
    study = predicted({"viral_pneumonia": 0.8})
    Prediction.objects.filter(pk=study.current_prediction_id).update(assessment={}, assessable=None)
    Study.objects.filter(pk=study.pk).update(assessability="unchecked")
    client.force_login(staff)
    page = client.get("/upload/").content.decode()
    assert "viral_pneumonia" in page and "not assessable" not in page
