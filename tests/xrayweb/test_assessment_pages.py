"""Pages: a not-assessable study shows why instead of a diagnosis, a radiologist can reveal the
model's output, and the worklist shows the state and filters on it and on the saliency flag."""

import re

import pytest

from xrayweb.audit.models import AuditEvent
from xrayweb.review.models import Review
from xrayweb.review.selectors import worklist

CT = {"assessable": False, "reasons": ["looks like a CT slice", "both lungs not in view"]}


@pytest.fixture
def refused(predicted):
    return predicted({"covid19": 0.97}, gate=CT, lung_mask="masks/x.png", cam_lung_fraction=0.9)


def test_a_not_assessable_study_shows_the_reasons_and_no_diagnosis(client, staff, refused):
    client.force_login(staff)
    html = client.get(f"/studies/{refused.pk}/").content.decode()
    assert "Not assessable</strong>: looks like a CT slice; both lungs not in view" in html
    assert 'class="prediction"' not in html and "covid19</strong>" not in html
    assert 'id="overlay"' not in html and "heatmaps/" not in html and 'class="probs"' not in html
    # Staff may not reveal: the parameter is ignored.
    revealed = client.get(f"/studies/{refused.pk}/?reveal=1").content.decode()
    assert 'class="prediction"' not in revealed and 'id="reveal-output"' not in revealed


def _label_input(html: str, label: str) -> str:
    return re.search(rf'<input type="radio" name="label" value="{label}"[^>]*>', html)[0]


def test_a_radiologist_reveals_the_models_output_and_the_reveal_is_audited(
    client, radiologist, refused
):
    client.force_login(radiologist)
    html = client.get(f"/studies/{refused.pk}/?sort=newest").content.decode()
    assert 'href="?sort=newest&amp;reveal=1"' in html and 'class="prediction"' not in html
    assert "checked" not in _label_input(html, "covid19")  # the form does not tell either
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.STUDY_REVEAL).exists()
    shown = client.get(f"/studies/{refused.pk}/?sort=newest&reveal=1").content.decode()
    assert 'class="prediction"><strong>covid19</strong>' in shown and 'class="probs"' in shown
    assert "Not assessable</strong>: looks like a CT slice" in shown and 'id="revealed"' in shown
    assert "checked" not in _label_input(shown, "covid19")  # not suggested to the reader
    event = AuditEvent.objects.get(action=AuditEvent.Action.STUDY_REVEAL)
    assert (event.study_id, event.actor, event.detail) == (
        refused.pk,
        radiologist,
        {"state": "not_assessable"},
    )


def test_the_page_form_records_not_diagnostic_without_the_ticked_class(
    client, radiologist, predicted
):
    study = predicted({"normal": 0.9})
    client.force_login(radiologist)
    form = {"label": "normal", "assessability": "not_diagnostic", "state": "unread"}
    client.post(f"/studies/{study.pk}/review/", form)
    review = Review.objects.get()
    assert (review.label, review.assessability) == ("", "not_diagnostic")
    html = client.get(f"/studies/{study.pk}/").content.decode()
    assert "Not diagnostic</strong>" in html and 'id="final-label">not diagnostic<' in html


def test_the_upload_page_gives_the_reasons_instead_of_a_label(client, staff, refused):
    client.force_login(staff)
    html = client.get("/upload/").content.decode()
    assert "not assessable: looks like a CT slice; both lungs not in view" in html
    assert "covid19" not in html


def test_the_study_page_flags_looking_outside_the_lungs_and_empty_heatmaps(
    client, radiologist, predicted, settings
):
    settings.CAM_OUTSIDE_LUNGS_THRESHOLD = 0.5
    outside = predicted({"normal": 0.9}, lung_mask="masks/a.png", cam_lung_fraction=0.3)
    empty = predicted({"normal": 0.9}, lung_mask="masks/b.png", cam_lung_fraction=None)
    inside = predicted({"normal": 0.9}, lung_mask="masks/c.png", cam_lung_fraction=0.8)
    client.force_login(radiologist)
    page = {s: client.get(f"/studies/{s.pk}/").content.decode() for s in (outside, empty, inside)}
    assert "looked outside the lungs" in page[outside]
    assert "no positive evidence for this class" in page[empty]
    assert "looked outside the lungs" not in page[inside] + page[empty]
    assert "no positive evidence" not in page[inside] + page[outside]


def _ids(params: dict) -> set[int]:
    filters = worklist(params=params)
    assert filters.is_valid(), filters.errors
    return set(filters.qs.values_list("pk", flat=True))


def test_the_worklist_shows_the_state_and_filters_on_it_and_on_the_saliency_flag(
    client, radiologist, predicted, refused, settings
):
    settings.CAM_OUTSIDE_LUNGS_THRESHOLD = 0.5
    outside = predicted({"normal": 0.9}, lung_mask="masks/a.png", cam_lung_fraction=0.2)
    plain = predicted({"normal": 0.9})
    assert _ids({"assessability": "not_assessable"}) == {refused.pk}
    assert _ids({"assessability": "assessable"}) == {outside.pk, plain.pk}
    assert _ids({"outside_lungs": "yes"}) == {outside.pk}
    assert _ids({"outside_lungs": "no"}) == {refused.pk}  # measured and inside
    client.force_login(radiologist)
    html = client.get("/worklist/").content.decode()
    row = re.search(rf'data-study-id="{refused.pk}".*?</tr>', html, re.S).group(0)
    assert "not assessable" in row and "covid19" not in row
    assert "outside the lungs" in re.search(rf'data-study-id="{outside.pk}".*?</tr>', html, re.S)[0]
    assert 'name="assessability"' in html and 'name="outside_lungs"' in html
    assert client.get("/worklist/?outside_lungs=maybe").status_code == 400


def test_disagreement_leaves_out_studies_that_are_not_readable(predicted, radiologist):
    from xrayweb.review.services import review_submit

    unread = predicted({"covid19": 0.9})
    review_submit(study=unread, reviewer=radiologist, assessability="not_diagnostic")
    read = predicted({"covid19": 0.9})
    review_submit(study=read, reviewer=radiologist, label="normal")
    assert _ids({"disagree": "yes"}) == {read.pk}
    assert _ids({"disagree": "no"}) == set()
