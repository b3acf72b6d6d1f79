import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from xrayweb.inference import runtime
from xrayweb.studies.models import Study


def _upload(api_client, data: bytes, name: str = "x.png", **fields):
    body = {
        "image": SimpleUploadedFile(name, data),
        "patient_id": "P1",
        "accession": "A1",
        **fields,
    }
    return api_client.post("/api/studies/", body, format="multipart")


def test_token_auth_then_upload_then_read_then_review(
    api_client, staff, radiologist, active_version, sample_images
):
    response = api_client.post(
        "/api/auth/token/", {"username": staff.username, "password": "pw-Test-12345"}, format="json"
    )
    assert response.status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    created = _upload(api_client, sample_images[0].read_bytes(), "cxr.jpg")
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "status": "queued"}
    study_id = created.json()["id"]
    runtime.prediction_batch_run(study_id=study_id, max_studies=1)[0]

    detail = api_client.get(f"/api/studies/{study_id}/").json()
    assert detail["status"] == "done"
    prediction = detail["prediction"]
    assert prediction["label"] in prediction["probabilities"]
    assert prediction["model_version"] == active_version.name
    assert set(prediction["heatmaps"]) == {"fused", "mobilenet", "vgg"}
    heatmap = api_client.get(prediction["heatmaps"]["fused"])
    assert heatmap.status_code == 200 and heatmap["Content-Type"] == "image/png"
    assert heatmap["X-Content-Type-Options"] == "nosniff"

    api_client.credentials()
    api_client.force_authenticate(radiologist)
    review = api_client.post(
        f"/api/studies/{study_id}/reviews/",
        {"label": "normal", "comment": "no consolidation"},
        format="json",
    )
    assert review.status_code == 201
    assert review.json()["reviewer"] == radiologist.username
    detail = api_client.get(f"/api/studies/{study_id}/").json()
    assert detail["current_label"] == "normal"
    assert detail["reviews"][0]["comment"] == "no consolidation"


def test_wrong_password_gets_a_json_detail(api_client, staff):
    response = api_client.post(
        "/api/auth/token/", {"username": staff.username, "password": "wrong"}, format="json"
    )
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"<html>hi</html>", 400, "not a PNG or JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", 400, "truncated or corrupt"),
    ],
)
def test_bad_uploads_get_4xx_json_and_store_nothing(api_client, staff, data, status, message):
    api_client.force_authenticate(staff)
    response = _upload(api_client, data)
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert Study.objects.count() == 0


def test_an_image_over_the_pixel_limit_is_refused(api_client, staff, settings, png):
    settings.MAX_IMAGE_PIXELS = 1000
    api_client.force_authenticate(staff)
    response = _upload(api_client, png(64, 48))
    assert response.status_code == 400
    assert "above the limit of 1,000 pixels" in response.json()["detail"]


def test_missing_fields_are_named_in_the_error(api_client, staff, png):
    api_client.force_authenticate(staff)
    response = api_client.post("/api/studies/", {"patient_id": "P"}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("image:") and set(body["errors"]) == {"image"}
    # Identifiers are optional in the form (a DICOM header gives them), not for a PNG.
    upload = io.BytesIO(png())
    upload.name = "x.png"
    response = api_client.post("/api/studies/", {"image": upload}, format="multipart")
    assert response.status_code == 400 and response.json()["detail"] == "Patient ID is required."


def test_review_of_an_unknown_label_is_a_400(api_client, radiologist, active_version, staff, png):
    from xrayweb.studies.services import study_create

    study = study_create(user=staff, patient_id="P", accession="A", data=png())
    api_client.force_authenticate(radiologist)
    response = api_client.post(f"/api/studies/{study.pk}/reviews/", {"label": "flu"}, format="json")
    assert response.status_code == 400
    assert "Unknown label" in response.json()["detail"]


def test_missing_study_is_a_404_json(api_client, staff):
    api_client.force_authenticate(staff)
    response = api_client.get("/api/studies/999/")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_list_filters_by_ids_for_status_polling(api_client, staff, png):
    from xrayweb.studies.services import study_create

    a = study_create(user=staff, patient_id="P", accession="A", data=png(seed=1))
    study_create(user=staff, patient_id="P", accession="B", data=png(seed=2))
    api_client.force_authenticate(staff)
    body = api_client.get(f"/api/studies/?ids={a.pk}").json()
    assert [s["id"] for s in body["results"]] == [a.pk]
    assert api_client.get("/api/studies/?ids=x").status_code == 400
