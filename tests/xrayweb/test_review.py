import pytest

from xrayweb.audit.models import AppendOnlyError
from xrayweb.errors import ApplicationError
from xrayweb.inference import runtime
from xrayweb.review.models import Review
from xrayweb.review.services import review_submit
from xrayweb.studies.services.ingest import study_create


@pytest.fixture
def predicted_study(active_version, staff, sample_images):
    study = study_create(
        user=staff, patient_id="P1", accession="A1", data=sample_images[0].read_bytes()
    )
    prediction = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)[0]
    return study, prediction


def test_confirm_then_correct_appends_rows_and_the_newest_is_current(predicted_study, radiologist):
    study, prediction = predicted_study
    other = next(c for c in ["covid19", "normal"] if c != prediction.label)
    first = review_submit(study=study, reviewer=radiologist, label=prediction.label)
    second = review_submit(study=study, reviewer=radiologist, label=other, comment="on re-read")
    assert first.agrees_with_model is True and second.agrees_with_model is False
    assert second.replaces == first and first.replaces is None
    assert second.prediction == prediction
    assert list(study.reviews.all()) == [second, first]  # newest first
    assert study.reviews.first().label == other


def test_a_label_outside_the_bundle_classes_is_refused(predicted_study, radiologist):
    study, _ = predicted_study
    with pytest.raises(ApplicationError, match="Unknown label"):
        review_submit(study=study, reviewer=radiologist, label="tuberculosis")
    assert Review.objects.count() == 0


def test_reviews_can_never_be_edited_or_deleted(predicted_study, radiologist):
    study, prediction = predicted_study
    review = review_submit(study=study, reviewer=radiologist, label=prediction.label)
    review.comment = "rewritten"
    with pytest.raises(AppendOnlyError):
        review.save()
    with pytest.raises(AppendOnlyError):
        review.delete()
    with pytest.raises(AppendOnlyError):
        Review.objects.filter(pk=review.pk).update(label="normal")
    with pytest.raises(AppendOnlyError):
        Review.objects.all().delete()
    review.refresh_from_db()
    assert review.comment == ""


def test_review_page_shows_xray_overlay_probabilities_and_history(
    client, predicted_study, radiologist
):
    study, prediction = predicted_study
    client.force_login(radiologist)
    response = client.post(
        f"/studies/{study.pk}/review/", {"label": prediction.label, "comment": "agree"}, follow=True
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert f"/media/{study.image.name}" in html
    assert f"/media/{prediction.heatmaps['fused']}" in html
    assert 'id="overlay-opacity"' in html and 'id="overlay-toggle"' in html
    for name in prediction.probabilities:
        assert name in html
    assert "agree" in html and "confirmed model" in html


def test_worklist_lists_unreviewed_studies_first(
    client, predicted_study, radiologist, staff, sample_images
):
    reviewed, prediction = predicted_study
    review_submit(study=reviewed, reviewer=radiologist, label=prediction.label)
    fresh = study_create(
        user=staff, patient_id="P2", accession="A2", data=sample_images[1].read_bytes()
    )
    client.force_login(radiologist)
    html = client.get("/worklist/").content.decode()
    assert html.index(f'data-study-id="{fresh.pk}"') < html.index(f'data-study-id="{reviewed.pk}"')
