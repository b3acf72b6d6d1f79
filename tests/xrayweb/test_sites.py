"""Who sees what, by role and site (issue 27). Staff read only their site's studies, or only
their own uploads when they have no site; radiologists and admins read every site. Every
other study answers 404 (its existence does not leak), on pages, in the API and for its
files. Lists and file reads are audited. Before the fix a second staff member read the
first one's study, its heatmap and its readings by id, and no list read left a row."""

import pytest

from xrayweb.accounts.services import membership_set
from xrayweb.audit.models import AuditEvent
from xrayweb.studies.services.ingest import study_create


@pytest.fixture
def at(make_user):
    """at(role, site) -> a user of that role filed under that site ("" for none)."""

    def make(role: str, site: str):
        user = make_user(role)
        membership_set(user=user, site=site)
        return user

    return make


@pytest.fixture
def south_study(predicted, staff):
    """A predicted study of site "south", uploaded by the ``staff`` fixture (no site), with
    a heatmap file to read."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    study = predicted({"covid19": 0.8}, site="south")
    name = default_storage.save(f"heatmaps/{study.pk}-abcdef.png", ContentFile(b"\x89PNG"))
    prediction = study.current_prediction
    prediction.heatmaps = {"fused": name}
    prediction.save(update_fields=["heatmaps"])
    return study


def _reads(client, api_client, user, study) -> dict[str, int]:
    client.force_login(user)
    api_client.force_authenticate(user)
    heatmap = study.current_prediction.heatmaps["fused"]
    return {
        "page": client.get(f"/studies/{study.pk}/").status_code,
        "api": api_client.get(f"/api/studies/{study.pk}/").status_code,
        "predictions": api_client.get(f"/api/studies/{study.pk}/predictions/").status_code,
        "readings": api_client.get(f"/api/studies/{study.pk}/reviews/").status_code,
        "image": client.get(f"/media/{study.image.name}").status_code,
        "thumbnail": client.get(f"/media/{study.thumbnail.name}").status_code,
        "heatmap": client.get(f"/media/{heatmap}").status_code,
    }


def _listed(client, api_client, user, study) -> dict[str, bool]:
    client.force_login(user)
    api_client.force_authenticate(user)
    page = client.get("/worklist/")
    api = api_client.get("/api/studies/").json()["results"]
    return {
        "worklist": study in page.context["page"].object_list,
        "api": study.pk in [row["id"] for row in api],
    }


def test_staff_of_another_site_neither_list_nor_read_a_study(client, api_client, at, south_study):
    north = at("staff", "north")
    assert _reads(client, api_client, north, south_study) == dict.fromkeys(
        ["page", "api", "predictions", "readings", "image", "thumbnail", "heatmap"], 404
    )
    assert _listed(client, api_client, north, south_study) == {"worklist": False, "api": False}


def test_staff_of_the_site_and_every_radiologist_and_admin_read_it(
    client, api_client, at, south_study
):
    for user in (at("staff", "south"), at("radiologist", ""), at("admin", "north")):
        assert set(_reads(client, api_client, user, south_study).values()) == {200}, user
        assert _listed(client, api_client, user, south_study) == {"worklist": True, "api": True}


def test_staff_without_a_site_read_only_their_own_uploads(
    client, api_client, make_user, staff, south_study
):
    other = make_user("staff")
    assert set(_reads(client, api_client, other, south_study).values()) == {404}
    assert set(_reads(client, api_client, staff, south_study).values()) == {200}


def test_an_upload_is_filed_under_the_uploaders_site_and_no_other(at, png):
    north = at("staff", "north")
    study = study_create(user=north, patient_id="P1", accession="A1", data=png(seed=1))
    assert study.site == "north"
    from xrayweb.errors import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        study_create(user=north, patient_id="P2", accession="A2", data=png(seed=2), site="south")
    assert refused.value.status == 403 and "north" in str(refused.value)


def test_list_and_file_reads_are_audited_thumbnails_with_their_list(
    client, api_client, at, south_study
):
    reader = at("radiologist", "")
    client.force_login(reader)  # a user.login row of its own (issue 29), before the reads
    before = AuditEvent.objects.count()
    client.get("/worklist/?sort=uncertain")
    api_client.force_authenticate(reader)
    api_client.get("/api/studies/?per_page=5")
    client.get(f"/media/{south_study.image.name}")
    client.get(f"/media/{south_study.current_prediction.heatmaps['fused']}")
    client.get(f"/media/{south_study.thumbnail.name}")
    rows = list(AuditEvent.objects.order_by("id")[before:])
    assert [(r.action, r.actor_id) for r in rows] == [
        ("study.list", reader.pk),
        ("study.list", reader.pk),
        ("study.media", reader.pk),
        ("study.media", reader.pk),
    ]
    assert rows[0].detail == {"ids": [south_study.pk], "query": "sort=uncertain"}
    assert rows[1].detail == {"ids": [south_study.pk], "query": "per_page=5"}
    assert [r.detail["file"] for r in rows[2:]] == ["studies", "heatmaps"]
    assert all(r.study_id == south_study.pk for r in rows[2:])


def test_a_change_of_site_is_in_the_audit_chain(at):
    user = at("staff", "north")
    membership_set(user=user, site="south")
    rows = AuditEvent.objects.filter(action="user.change", detail__user=user.pk).order_by("id")
    assert [r.detail.get("site") for r in rows if "site" in r.detail] == [
        ["", "north"],
        ["north", "south"],
    ]
