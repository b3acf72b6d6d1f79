"""Review states: single read, two independent reads, arbitration, amendments."""

import pytest

from xrayweb.audit.models import AuditEvent
from xrayweb.errors import ApplicationError
from xrayweb.review.models import Review
from xrayweb.review.selectors import reviews_visible
from xrayweb.review.services import review_submit
from xrayweb.studies.models import ReviewState


@pytest.fixture
def readers(make_user):
    return [make_user("radiologist", f"reader{i}") for i in range(3)]


def test_single_read_is_final_and_a_later_reading_amends_it(predicted, readers):
    study = predicted({"normal": 0.9})
    first = review_submit(study=study, reviewer=readers[0], label="normal")
    study.refresh_from_db()
    assert (study.review_state, study.final_label) == (ReviewState.FINAL, "normal")
    assert first.kind == Review.Kind.READ
    amended = review_submit(study=study, reviewer=readers[1], label="covid19")
    study.refresh_from_db()
    assert amended.kind == Review.Kind.AMENDMENT and amended.replaces == first
    assert study.final_label == "covid19" and study.finalized_at is not None


def test_two_agreeing_reads_are_final(predicted, readers, settings):
    settings.REVIEW_SECOND_READ = True
    study = predicted({"normal": 0.9})
    review_submit(study=study, reviewer=readers[0], label="normal")
    study.refresh_from_db()
    assert (study.review_state, study.final_label) == (ReviewState.SECOND_READ, "")
    review_submit(study=study, reviewer=readers[1], label="normal")
    study.refresh_from_db()
    assert (study.review_state, study.final_label) == (ReviewState.FINAL, "normal")


def test_disagreeing_reads_go_to_arbitration_and_the_arbiters_read_is_final(
    predicted, readers, settings
):
    settings.REVIEW_SECOND_READ = True
    study = predicted({"viral_pneumonia": 0.6, "bacterial_pneumonia": 0.4})
    review_submit(study=study, reviewer=readers[0], label="viral_pneumonia")
    with pytest.raises(ApplicationError, match="second radiologist") as same_reader:
        review_submit(study=study, reviewer=readers[0], label="bacterial_pneumonia")
    assert same_reader.value.status == 409
    review_submit(study=study, reviewer=readers[1], label="bacterial_pneumonia")
    study.refresh_from_db()
    assert study.review_state == ReviewState.ARBITRATION and study.final_label == ""
    for reader in readers[:2]:
        with pytest.raises(ApplicationError, match="did not read it must arbitrate"):
            review_submit(study=study, reviewer=reader, label="viral_pneumonia")
    arbitration = review_submit(study=study, reviewer=readers[2], label="bacterial_pneumonia")
    study.refresh_from_db()
    assert arbitration.kind == Review.Kind.ARBITRATION
    assert (study.review_state, study.final_label) == (ReviewState.FINAL, "bacterial_pneumonia")
    # Each read is stored with its reader; three rows, nothing rewritten.
    rows = list(study.reviews.order_by("created_at", "id").values_list("reviewer", "label", "kind"))
    assert rows == [
        (readers[0].pk, "viral_pneumonia", "read"),
        (readers[1].pk, "bacterial_pneumonia", "read"),
        (readers[2].pk, "bacterial_pneumonia", "arbitration"),
    ]
    assert AuditEvent.objects.filter(action="review.create", study=study).count() == 3


def test_the_first_read_is_hidden_from_the_second_reader_until_they_read(
    predicted, readers, settings, client
):
    settings.REVIEW_SECOND_READ = True
    study = predicted({"normal": 0.9})
    review_submit(study=study, reviewer=readers[0], label="covid19", comment="first opinion")
    study.refresh_from_db()
    assert reviews_visible(study=study, user=readers[1]) == []
    assert len(reviews_visible(study=study, user=readers[0])) == 1
    client.force_login(readers[1])
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert "first opinion" not in page and "first read is hidden" in page
    api = client.get(f"/api/studies/{study.pk}/").json()
    assert api["reviews"] == [] and api["review_state"] == "second_read"


def test_a_second_read_conflict_is_a_409_in_the_api(predicted, readers, settings, client):
    settings.REVIEW_SECOND_READ = True
    study = predicted({"normal": 0.9})
    client.force_login(readers[0])
    url = f"/api/studies/{study.pk}/reviews/"
    assert client.post(url, {"label": "normal"}).status_code == 201
    response = client.post(url, {"label": "normal"})
    assert response.status_code == 409
    assert "second radiologist" in response.json()["detail"]


def test_the_csv_export_keeps_a_pending_first_read_from_other_readers(
    predicted, readers, settings, client, admin_user
):
    settings.REVIEW_SECOND_READ = True
    study = predicted({"normal": 0.9})
    review_submit(study=study, reviewer=readers[0], label="covid19", comment="first opinion")

    def export(query: str = "") -> str:
        return b"".join(client.get(f"/agreement/export.csv{query}").streaming_content).decode()

    # The read shows as its reader's entry in the history (comments are withheld unless an
    # admin exports identified data).
    client.force_login(readers[1])
    assert readers[0].username not in export()
    client.force_login(readers[0])
    assert readers[0].username in export()  # the reader's own first read
    client.force_login(admin_user)
    assert readers[0].username in export() and "first opinion" in export("?identified=1")


def test_a_reading_of_a_study_that_changed_meanwhile_is_refused(predicted, readers, client):
    study = predicted({"normal": 0.9})
    client.force_login(readers[1])
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert 'name="state" value="unread"' in page
    review_submit(study=study, reviewer=readers[0], label="normal")  # someone else, meanwhile
    response = client.post(f"/studies/{study.pk}/review/", {"label": "covid19", "state": "unread"})
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.final_label == "normal" and study.reviews.count() == 1
    api = client.post(
        f"/api/studies/{study.pk}/reviews/", {"label": "covid19", "expected_state": "unread"}
    )
    assert api.status_code == 409 and "someone else" in api.json()["detail"]
