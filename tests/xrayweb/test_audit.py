"""Agreement dashboard, CSV export, audit log and the append-only guarantees."""

import csv
import io
import json

import pytest

from xrayweb.audit.models import AppendOnlyError, AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.review.models import Review
from xrayweb.review.services import review_submit
from xrayweb.review.stats import agreement_summary, cohen_kappa, wilson


def test_wilson_interval_and_kappa_match_hand_computed_values():
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0) is None
    # Observed agreement 0.7, chance agreement 0.5: kappa 0.4.
    assert cohen_kappa([[35, 15], [15, 35]]) == pytest.approx(0.4)
    assert cohen_kappa([[5, 0], [0, 0]]) is None  # one class only: undefined
    summary = agreement_summary(["a", "b"], {("a", "a"): 8, ("a", "b"): 2, ("b", "b"): 5})
    assert summary["matrix"] == [[8, 2], [0, 5]]
    assert summary["per_class"]["a"]["sensitivity"]["value"] == pytest.approx(0.8)
    assert summary["per_class"]["a"]["ppv"]["value"] == pytest.approx(1.0)
    assert summary["per_class"]["b"]["specificity"]["value"] == pytest.approx(0.8)


@pytest.fixture
def reviewed(predicted, radiologist):
    """Four studies: model right twice, wrong twice; one unreviewed study is left out."""
    cases = [
        ({"normal": 0.9}, "normal", {"site": "north", "view": "PA"}),
        ({"covid19": 0.8}, "covid19", {"site": "north", "view": "AP"}),
        ({"covid19": 0.55}, "normal", {"site": "south", "view": "PA"}),
        ({"viral_pneumonia": 0.5}, "bacterial_pneumonia", {"site": "south", "view": "AP"}),
    ]
    studies = []
    for probs, truth, fields in cases:
        study = predicted(probs, **fields)
        review_submit(study=study, reviewer=radiologist, label=truth)
        studies.append(study)
    predicted({"normal": 0.7})
    return studies


def _cell(html: str, truth: str, predicted: str) -> int:
    marker = f'data-true="{truth}" data-predicted="{predicted}">'
    start = html.index(marker) + len(marker)
    return int(html[start : html.index("<", start)])


def test_dashboard_compares_model_with_final_labels_and_slices_by_site(
    client, radiologist, reviewed
):
    client.force_login(radiologist)
    html = client.get("/agreement/").content.decode()
    assert 'id="agreement-n">4<' in html
    assert 'id="agreement-rate">0.500<' in html
    assert _cell(html, "normal", "normal") == 1
    assert _cell(html, "normal", "covid19") == 1
    assert _cell(html, "bacterial_pneumonia", "viral_pneumonia") == 1
    assert "<svg" in html and 'class="bin"' in html and 'class="point"' in html
    south = client.get("/agreement/?site=south").content.decode()
    assert 'id="agreement-n">2<' in south and 'id="agreement-rate">0.000<' in south
    pa = client.get("/agreement/?view=PA&model_version=tiny").content.decode()
    assert 'id="agreement-n">2<' in pa
    assert client.get("/agreement/?date_from=yesterday").status_code == 400


def test_dashboard_follows_a_correction(client, radiologist, reviewed):
    client.force_login(radiologist)
    before = client.get("/agreement/").content.decode()
    assert _cell(before, "normal", "normal") == 1
    review_submit(study=reviewed[0], reviewer=radiologist, label="covid19")
    after = client.get("/agreement/").content.decode()
    assert _cell(after, "normal", "normal") == 0
    assert _cell(after, "covid19", "normal") == 1


def test_csv_export_has_every_prediction_with_its_full_history(
    client, radiologist, reviewed, make_user, predicted
):
    predicted({"normal": 0.6}, patient_id="=2+3")
    other = make_user("radiologist", "second")
    review_submit(study=reviewed[0], reviewer=other, label="covid19", comment="=HYPERLINK(1)")
    client.force_login(radiologist)
    response = client.get("/agreement/export.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 6  # every prediction, reviewed or not
    first = next(r for r in rows if r["study_id"] == str(reviewed[0].pk))
    history = json.loads(first["reviews"])
    assert [(h["reader"], h["label"], h["kind"]) for h in history] == [
        (radiologist.username, "normal", "read"),
        ("second", "covid19", "amendment"),
    ]
    assert first["final_label"] == "covid19" and first["predicted_label"] == "normal"
    # Pseudonymised by default (issue 27): keyed pseudonyms, no comments.
    assert history[1]["comment"] == "(withheld)"
    assert reviewed[0].patient_id not in {r["patient_id"] for r in rows}
    assert all(r["patient_id"].startswith("P-") for r in rows)
    (event,) = AuditEvent.objects.filter(action="export.csv", actor=radiologist)
    assert event.detail == {"kind": "pseudonymised", "scope": "all predictions"}
    # A radiologist may not ask for identifiers; an admin may, and it is audited as such.
    assert client.get("/agreement/export.csv?identified=1").status_code == 403
    admin = make_user("admin")
    client.force_login(admin)
    response = client.get("/agreement/export.csv?identified=1")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    first = next(r for r in rows if r["study_id"] == str(reviewed[0].pk))
    # A comment that a spreadsheet would run as a formula is neutralised in the JSON cell,
    # and a cell that itself starts with "=" is prefixed.
    assert json.loads(first["reviews"])[1]["comment"] == "=HYPERLINK(1)"
    assert "'=2+3" in [r["patient_id"] for r in rows]
    (event,) = AuditEvent.objects.filter(action="export.csv", actor=admin)
    assert event.detail == {"kind": "identified", "scope": "all predictions"}


def test_staff_may_not_see_the_dashboard_export_or_audit_log(client, staff, radiologist):
    client.force_login(staff)
    for url in ("/agreement/", "/agreement/export.csv", "/audit/log/"):
        assert client.get(url).status_code == 403
    client.force_login(radiologist)
    assert client.get("/audit/log/").status_code == 403


def test_views_uploads_reviews_and_exports_are_in_the_audit_log(
    client, admin_user, radiologist, predicted
):
    study = predicted({"normal": 0.9})
    client.force_login(radiologist)
    client.get(f"/studies/{study.pk}/")
    client.get(f"/api/studies/{study.pk}/")
    client.post(f"/studies/{study.pk}/review/", {"label": "normal"})
    actions = list(
        AuditEvent.objects.filter(study=study).order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "study.upload",
        "prediction.record",  # by the worker
        "study.view",
        "study.view",
        "review.create",
    ]
    client.force_login(admin_user)
    page = client.get(f"/audit/log/?study={study.pk}").content.decode()
    assert page.count("study.view") >= 2 and radiologist.username in page
    assert "PAT-" not in json.dumps(list(AuditEvent.objects.values_list("detail", flat=True)))


@pytest.mark.parametrize("model", [Review, AuditEvent])
def test_reviews_and_audit_events_refuse_update_and_delete_through_the_orm(
    model, predicted, radiologist
):
    study = predicted({"normal": 0.9})
    review_submit(study=study, reviewer=radiologist, label="normal")
    audit_record(actor=radiologist, action="study.view", study=study)
    row = model.objects.first()
    with pytest.raises(AppendOnlyError):
        model.objects.filter(pk=row.pk).update(created_at=row.created_at)
    with pytest.raises(AppendOnlyError):
        model.objects.filter(pk=row.pk).delete()
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        model.objects.bulk_update([row], ["created_at"])


def test_even_an_admin_cannot_change_or_delete_reviews_or_audit_events(
    client, admin_user, radiologist, predicted
):
    study = predicted({"normal": 0.9})
    review = review_submit(study=study, reviewer=radiologist, label="normal")
    event = AuditEvent.objects.filter(study=study).first()
    client.force_login(admin_user)
    for name, pk in (("review/review", review.pk), ("audit/auditevent", event.pk)):
        assert client.post(f"/admin/{name}/{pk}/change/", {"label": "covid19"}).status_code == 403
        assert client.post(f"/admin/{name}/{pk}/delete/", {"post": "yes"}).status_code == 403
        assert client.get(f"/admin/{name}/").status_code == 200  # they can read them
    api = f"/api/studies/{study.pk}/reviews/"
    assert client.put(api, {"label": "covid19"}, content_type="application/json").status_code in (
        403,
        405,
    )
    assert client.delete(api).status_code in (403, 405)
    review.refresh_from_db()
    assert review.label == "normal" and AuditEvent.objects.filter(pk=event.pk).exists()


def test_an_admin_cannot_delete_a_prediction(client, admin_user, predicted):
    """Issue 27: predictions could be deleted in the admin."""
    from xrayweb.inference.models import Prediction

    study = predicted({"normal": 0.9})
    prediction = study.current_prediction
    client.force_login(admin_user)
    url = f"/admin/inference/prediction/{prediction.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 403
    listing = "/admin/inference/prediction/"
    bulk = {"action": "delete_selected", "_selected_action": [prediction.pk], "post": "yes"}
    client.post(listing, bulk)
    assert Prediction.objects.filter(pk=prediction.pk).exists()


def test_the_admin_shows_no_api_token_keys_and_mints_none_for_others(client, admin_user, make_user):
    """Issue 27: DRF's TokenAdmin listed every key and could mint one for any user (so could
    knox's), so an admin could act as anyone through the API."""
    from knox.models import AuthToken
    from rest_framework.test import APIClient

    staff = make_user("staff")
    _token, key = AuthToken.objects.create(user=staff)
    client.force_login(admin_user)
    listing = client.get("/admin/knox/authtoken/")
    page = listing.content.decode()
    assert listing.status_code == 200 and staff.username in page
    # The row's id is the key's SHA-512 digest (it shows in the revoke checkbox): no way back
    # to the key, unlike DRF's, whose id was the key itself.
    assert key not in page and key[:15] not in page
    assert client.get("/admin/knox/authtoken/add/").status_code == 403
    minted = client.post("/admin/knox/authtoken/add/", {"user": admin_user.pk})
    assert minted.status_code == 403 and not AuthToken.objects.filter(user=admin_user).exists()
    # Cutting the user off is deactivating the account: the token stops working.
    staff.is_active = False
    staff.save()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/studies/").status_code == 401


def test_the_same_patient_has_the_same_pseudonym_in_every_export(client, radiologist, predicted):
    """Issue 27: the CSV gave every radiologist every patient's identifiers and comments."""
    first = predicted({"normal": 0.6}, patient_id="PAT-SECRET-1")
    predicted({"normal": 0.7}, patient_id="PAT-SECRET-1")
    client.force_login(radiologist)

    def patients() -> list[str]:
        body = b"".join(client.get("/agreement/export.csv").streaming_content).decode()
        assert "PAT-SECRET-1" not in body and first.accession not in body
        return [r["patient_id"] for r in csv.DictReader(io.StringIO(body))]

    once, again = patients(), patients()
    assert once == again and len(set(once)) == 1 and once[0].startswith("P-")
