import io
import re

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


def test_a_prediction_made_without_a_segmenter_has_null_lung_fields(
    api_client, staff, radiologist, predicted, client
):
    study = predicted({"normal": 0.8, "covid19": 0.2})  # stored as before the segmenter
    api_client.force_authenticate(staff)
    prediction = api_client.get(f"/api/studies/{study.pk}/").json()["prediction"]
    assert prediction["lung_mask"] is None and prediction["cam_lung_fraction"] is None
    (listed,) = api_client.get(f"/api/studies/{study.pk}/predictions/").json()
    assert listed["lung_mask"] is None and listed["cam_lung_fraction"] is None
    client.force_login(radiologist)
    page = client.get(f"/studies/{study.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Grad-CAM mass inside the lungs:" in html and "not measured" in html
    assert 'id="contour-toggle"' not in html and 'id="lung-contour"' not in html


def test_a_prediction_with_a_segmenter_links_its_lung_mask_for_logged_in_users_only(
    api_client, client, staff, radiologist, tiny_bundle_with_lungs, sample_images
):
    from xrayweb.inference.services.registry import model_version_register

    model_version_register(bundle_path=tiny_bundle_with_lungs, activate=True)
    api_client.force_authenticate(staff)
    study_id = _upload(api_client, sample_images[0].read_bytes(), "cxr.jpg").json()["id"]
    (stored,) = runtime.prediction_batch_run(study_id=study_id, max_studies=1)
    for url in (f"/api/studies/{study_id}/", f"/api/studies/{study_id}/predictions/"):
        body = api_client.get(url).json()
        prediction = body["prediction"] if "prediction" in body else body[0]
        assert prediction["lung_mask"] == f"http://testserver/media/{stored.lung_mask}"
        assert prediction["cam_lung_fraction"] == pytest.approx(stored.cam_lung_fraction)
        assert 0.0 <= prediction["cam_lung_fraction"] <= 1.0
    mask = api_client.get(prediction["lung_mask"])
    assert mask.status_code == 200 and mask["Content-Type"] == "image/png"
    assert mask["X-Content-Type-Options"] == "nosniff"
    api_client.force_authenticate(None)
    assert api_client.get(prediction["lung_mask"]).status_code == 401
    # The review page offers the contour and says how much of the heat is in the lungs.
    client.force_login(radiologist)
    html = client.get(f"/studies/{study_id}/").content.decode()
    assert f'data-src="/media/{stored.lung_mask}"' in html and 'id="contour-toggle"' in html
    shown = re.search(r"Grad-CAM mass inside the lungs:\s*<strong>(\d+)%</strong>", html)
    assert shown and int(shown[1]) == round(stored.cam_lung_fraction * 100)


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
    from xrayweb.studies.services.ingest import study_create

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
    from xrayweb.studies.services.ingest import study_create

    a = study_create(user=staff, patient_id="P", accession="A", data=png(seed=1))
    study_create(user=staff, patient_id="P", accession="B", data=png(seed=2))
    api_client.force_authenticate(staff)
    body = api_client.get(f"/api/studies/?ids={a.pk}").json()
    assert [s["id"] for s in body["results"]] == [a.pk]
    assert api_client.get("/api/studies/?ids=x").status_code == 400
