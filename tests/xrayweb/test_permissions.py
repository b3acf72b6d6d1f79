"""Who may do what: staff upload, radiologists review, admins manage models; login for all."""

import pytest

from xrayweb.studies.services.ingest import study_create


@pytest.fixture
def study(staff, png):
    return study_create(user=staff, patient_id="P1", accession="A1", data=png())


@pytest.mark.parametrize("url", ["/", "/upload/", "/worklist/", "/studies/1/", "/admin/"])
def test_anonymous_users_are_sent_to_the_login_page(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_anonymous_users_see_the_login_page(client, db):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert 'name="password"' in response.content.decode()


def test_anonymous_users_cannot_fetch_media(client, study):
    response = client.get(f"/media/{study.image.name}")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("role", "upload_status", "review_status"),
    [("staff", 200, 403), ("radiologist", 403, 302), ("admin", 200, 403)],
)
def test_page_permissions_by_role(
    client, make_user, staff, study, active_version, role, upload_status, review_status
):
    # Staff: the uploader (other staff do not see the study: test_sites.py).
    client.force_login(staff if role == "staff" else make_user(role))
    assert client.get("/upload/").status_code == upload_status
    assert client.get("/worklist/").status_code == 200
    assert client.get(f"/studies/{study.pk}/").status_code == 200
    response = client.post(f"/studies/{study.pk}/review/", {"label": "normal"})
    assert response.status_code == review_status
    assert study.reviews.count() == (1 if role == "radiologist" else 0)


@pytest.mark.parametrize(
    ("role", "create_status", "review_status"),
    [("staff", 201, 403), ("radiologist", 403, 201), ("admin", 201, 403)],
)
def test_api_permissions_by_role(
    api_client, make_user, staff, study, active_version, png, role, create_status, review_status
):
    api_client.force_authenticate(staff if role == "staff" else make_user(role))
    upload = {"image": _file(png()), "patient_id": "P2", "accession": "A2"}
    assert api_client.post("/api/studies/", upload, format="multipart").status_code == (
        create_status
    )
    assert api_client.get(f"/api/studies/{study.pk}/").status_code == 200
    response = api_client.post(
        f"/api/studies/{study.pk}/reviews/", {"label": "normal"}, format="json"
    )
    assert response.status_code == review_status
    if review_status == 403:
        assert response.json()["detail"] == "Only radiologists may review studies."


def test_anonymous_api_calls_get_401_json(api_client, study):
    response = api_client.get(f"/api/studies/{study.pk}/")
    assert response.status_code == 401
    assert response.json()["detail"]


def test_only_admins_reach_the_django_admin(client, make_user):
    for role, status in [("staff", 302), ("radiologist", 302), ("admin", 200)]:
        client.force_login(make_user(role))
        assert client.get("/admin/inference/modelversion/").status_code == status


def _file(data: bytes, name: str = "x.png"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/png")
