"""Results back into the study: the model's SR and the heatmap overlay after a prediction,
the radiologist's SR after a final reading, sent to a real Orthanc and checked over its REST
API; retries while it is down, admin resends, dciodvfy on what is sent."""

import io

import pytest
from celery.exceptions import Retry
from django.core.management import call_command
from django.core.management.base import CommandError
from pydicom import dcmread

from tests.xrayweb.conftest import png_bytes
from tests.xrayweb.dicomnet import films
from tests.xrayweb.dicomnet.peers import free_port
from tests.xrayweb.dicomnet.test_sr import dciodvfy_report
from xrayweb.audit.models import AuditEvent
from xrayweb.dicomnet import tasks
from xrayweb.dicomnet.models import Delivery, Destination
from xrayweb.dicomnet.scu import DeliveryError
from xrayweb.dicomnet.sending import DeliveryPending, delivery_attempt, delivery_object
from xrayweb.dicomnet.services import deliveries_for_predictions, delivery_resend
from xrayweb.inference import runtime
from xrayweb.inference.services.predictions import PredictionResult, predictions_record
from xrayweb.review.services import review_submit
from xrayweb.studies.services.ingest import study_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(mocker):
    """Delivery tasks are recorded, not published: each test sends them itself."""
    return mocker.patch("xrayweb.dicomnet.tasks.delivery_enqueue")


@pytest.fixture
def pacs(orthanc_clean):
    return Destination.objects.create(
        name="pacs",
        kind=Destination.Kind.CSTORE,
        ae_title=orthanc_clean.aet,
        host="127.0.0.1",
        port=orthanc_clean.dicom_port,
    )


@pytest.fixture
def predicted(active_version, staff, django_capture_on_commit_callbacks):
    """A DICOM film uploaded and predicted by the tiny model, its commit hooks run (so the
    deliveries are made as in production)."""

    def make(**header):
        data = films.to_bytes(films.film(width=96, **header))
        with django_capture_on_commit_callbacks(execute=True):
            study = study_create(user=staff, patient_id="", accession="", data=data)
        with django_capture_on_commit_callbacks(execute=True):
            runtime.prediction_batch_run(study_id=study.pk, max_studies=1)
        study.refresh_from_db()
        return study

    return make


def send_all(study) -> list[Delivery]:
    for delivery in Delivery.objects.filter(study=study):
        delivery_attempt(delivery_id=delivery.pk)
    return list(Delivery.objects.filter(study=study).order_by("kind"))


def test_a_prediction_sends_the_sr_and_the_overlay_into_the_same_study_in_orthanc(
    pacs, predicted, enqueued, orthanc_clean, client, admin_user
):
    study = predicted()
    deliveries = list(Delivery.objects.filter(study=study))
    assert {d.kind for d in deliveries} == {Delivery.Kind.MODEL_SR, Delivery.Kind.OVERLAY}
    assert sorted(c.args[0] for c in enqueued.call_args_list) == sorted(d.pk for d in deliveries)
    sent = send_all(study)
    assert all(d.status == Delivery.Status.DELIVERED and d.attempts == 1 for d in sent)
    by_kind = {d.kind: d for d in sent}
    for kind, modality in ((Delivery.Kind.MODEL_SR, "SR"), (Delivery.Kind.OVERLAY, "OT")):
        (found,) = orthanc_clean.find_instances(SOPInstanceUID=by_kind[kind].sop_instance_uid)
        tags = orthanc_clean.instance_tags(found["ID"])
        assert tags["StudyInstanceUID"] == study.study_instance_uid
        assert tags["PatientID"] == study.patient_id
        assert tags["Modality"] == modality
    # The overlay is the one the API's overlay.dcm gives: same UIDs.
    client.force_login(admin_user)
    overlay = client.get(f"/api/studies/{study.pk}/overlay.dcm")
    assert dcmread(io.BytesIO(overlay.content)).SOPInstanceUID == (
        by_kind[Delivery.Kind.OVERLAY].sop_instance_uid
    )
    events = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_DELIVERY, study=study)
    assert sorted(e.detail["outcome"] for e in events) == ["delivered", "delivered"]
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert "Sent to the PACS" in page and page.count("delivered</span>") == 2


def test_sending_again_keeps_one_instance_in_the_pacs(
    pacs, predicted, enqueued, orthanc_clean, admin_user
):
    study = predicted()
    send_all(study)
    before = len(orthanc_clean.instances())
    for delivery in Delivery.objects.filter(study=study):
        delivery_resend(delivery=delivery, actor=admin_user)
    send_all(study)
    assert len(orthanc_clean.instances()) == before  # the same UIDs: stored over themselves
    resends = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_DELIVERY, actor=admin_user)
    assert resends.count() == 2 and {e.detail["outcome"] for e in resends} == {"resend"}


def test_a_destination_that_is_down_is_retried_and_the_delivery_completes_when_it_is_back(
    pacs, predicted, enqueued, orthanc_clean
):
    study = predicted()
    sr = Delivery.objects.get(study=study, kind=Delivery.Kind.MODEL_SR)
    orthanc_clean.stop()
    with pytest.raises(DeliveryPending):
        delivery_attempt(delivery_id=sr.pk)
    sr.refresh_from_db()
    assert sr.status == Delivery.Status.PENDING and sr.attempts == 1
    assert "association failed" in sr.last_error
    orthanc_clean.start()
    sr = delivery_attempt(delivery_id=sr.pk)
    assert sr.status == Delivery.Status.DELIVERED and sr.attempts == 2 and not sr.last_error
    assert orthanc_clean.find_instances(SOPInstanceUID=sr.sop_instance_uid)
    outcomes = [
        e.detail["outcome"]
        for e in AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_DELIVERY).order_by("pk")
        if e.detail["delivery"] == sr.pk
    ]
    assert outcomes == ["retrying", "delivered"]


def test_after_the_last_attempt_a_delivery_fails_and_an_admin_can_send_it_again(
    predicted, enqueued, settings, client, admin_user, make_user
):
    settings.DICOM_DELIVERY_MAX_ATTEMPTS = 2
    settings.DICOM_DELIVERY_TIMEOUT = 2
    Destination.objects.create(
        name="nobody", kind="cstore", ae_title="NOBODY", host="127.0.0.1", port=free_port()
    )
    study = predicted()
    sr = Delivery.objects.get(study=study, kind=Delivery.Kind.MODEL_SR)
    with pytest.raises(DeliveryPending):
        delivery_attempt(delivery_id=sr.pk)
    sr = delivery_attempt(delivery_id=sr.pk)
    assert sr.status == Delivery.Status.FAILED and sr.attempts == 2
    enqueued.reset_mock()
    client.force_login(admin_user)
    response = client.post(
        "/admin/dicomnet/delivery/",
        {"action": "resend", "_selected_action": [sr.pk]},
    )
    assert response.status_code == 302
    sr.refresh_from_db()
    assert sr.status == Delivery.Status.PENDING and sr.attempts == 0
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert "Send again (admin)" in page and "association failed" in page
    # Others see the status, not the peer's error.
    client.force_login(make_user("radiologist"))
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert "pending</span>" in page and "association failed" not in page
    assert "Send again" not in page


def test_the_task_retries_a_pending_delivery_with_growing_backoff(mocker, settings):
    settings.DICOM_DELIVERY_BACKOFF = 10
    settings.DICOM_DELIVERY_BACKOFF_MAX = 60
    mocker.patch.object(tasks, "delivery_attempt", side_effect=DeliveryPending("down"))
    retry = mocker.patch.object(tasks.deliver, "retry", side_effect=Retry())
    countdowns = []
    for retries in (0, 1, 5):
        tasks.deliver.push_request(retries=retries)
        try:
            with pytest.raises(Retry):
                tasks.deliver.run(7)
        finally:
            tasks.deliver.pop_request()
        countdowns.append(retry.call_args.kwargs["countdown"])
    assert 10 <= countdowns[0] <= 12.5 and 20 <= countdowns[1] <= 25
    assert 60 <= countdowns[2] <= 75  # capped


def test_the_final_reading_follows_as_an_sr_with_the_radiologists_label(
    pacs, predicted, enqueued, orthanc_clean, radiologist, django_capture_on_commit_callbacks
):
    study = predicted()
    with django_capture_on_commit_callbacks(execute=True):
        review_submit(study=study, reviewer=radiologist, label="normal")
    reading = Delivery.objects.get(study=study, kind=Delivery.Kind.READING_SR)
    reading = delivery_attempt(delivery_id=reading.pk)
    assert reading.status == Delivery.Status.DELIVERED
    (found,) = orthanc_clean.find_instances(SOPInstanceUID=reading.sop_instance_uid)
    tags = orthanc_clean.instance_tags(found["ID"])
    assert tags["StudyInstanceUID"] == study.study_instance_uid
    assert tags["SeriesDescription"] == "xrayweb radiologist reading"


def test_a_stow_rs_destination_receives_the_results(predicted, enqueued, orthanc_clean):
    Destination.objects.create(
        name="dicomweb", kind="stow", stow_url=f"{orthanc_clean.url}/dicom-web/studies"
    )
    study = predicted()
    sent = send_all(study)
    assert [d.status for d in sent] == [Delivery.Status.DELIVERED] * 2
    for d in sent:
        assert orthanc_clean.find_instances(SOPInstanceUID=d.sop_instance_uid)


def test_a_not_assessable_prediction_sends_its_sr_but_no_heatmap(pacs, predicted, enqueued):
    """A lateral film is out of scope: the SR says so, and no heatmap is sent as if it
    explained a diagnosis the model did not make."""
    study = predicted(ViewPosition="LL")
    assert study.current_prediction.assessable is False
    (sr,) = Delivery.objects.filter(study=study)
    assert sr.kind == Delivery.Kind.MODEL_SR
    content = " ".join(_texts(dcmread(io.BytesIO(delivery_object(delivery=sr)))))
    assert "Not assessable by algorithm" in content and "lateral" in content.lower()
    assert "Probability" not in content and "COVID-19" not in content


def _texts(ds) -> list[str]:
    """Every text value and code meaning in an SR's content tree."""
    found = []
    for item in ds.get("ContentSequence", []):
        found += [str(item.get("TextValue", ""))]
        for name in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            found += [str(code.CodeMeaning) for code in item.get(name, [])]
        found += _texts(item)
    return found


def test_a_destination_gets_only_results_made_after_it_was_added(predicted, enqueued):
    study = predicted()
    Destination.objects.create(
        name="late", kind="cstore", ae_title="LATE", host="127.0.0.1", port=104
    )
    deliveries_for_predictions(prediction_ids=[study.current_prediction_id])
    assert not Delivery.objects.exists()


def test_the_backfill_makes_what_a_failed_receiver_did_not(
    pacs, predicted, enqueued, mocker, radiologist, django_capture_on_commit_callbacks
):
    """The receivers run after the commit: their failure is logged, never raised into the
    worker, and the periodic task makes the missing deliveries."""
    mocker.patch("xrayweb.dicomnet.services.deliveries_enqueue", side_effect=RuntimeError("broker"))
    study = predicted()  # the receiver fails: the prediction stands, no delivery
    assert study.status == "done" and not Delivery.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        review_submit(study=study, reviewer=radiologist, label="normal")
    assert not Delivery.objects.exists()
    mocker.stopall()
    enqueued = mocker.patch("xrayweb.dicomnet.tasks.delivery_enqueue")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.resend_overdue()
    kinds = sorted(Delivery.objects.values_list("kind", flat=True))
    assert kinds == ["model_sr", "overlay", "reading_sr"]
    assert enqueued.call_count == 3
    with django_capture_on_commit_callbacks(execute=True):
        tasks.resend_overdue()  # nothing twice
    assert Delivery.objects.count() == 3 and enqueued.call_count == 3


def test_a_resend_during_an_attempt_is_not_overwritten_by_its_outcome(
    pacs, predicted, enqueued, admin_user, mocker, settings
):
    settings.DICOM_DELIVERY_MAX_ATTEMPTS = 1
    study = predicted()
    sr = Delivery.objects.get(study=study, kind=Delivery.Kind.MODEL_SR)

    def send_while_resent(**kwargs):
        delivery_resend(delivery=Delivery.objects.get(pk=sr.pk), actor=admin_user)
        raise DeliveryError("peer went away")

    mocker.patch("xrayweb.dicomnet.sending._send", side_effect=send_while_resent)
    delivery_attempt(delivery_id=sr.pk)  # its last attempt fails, but the resend stands
    sr.refresh_from_db()
    assert sr.status == Delivery.Status.PENDING and sr.attempts == 0


def test_an_attempt_is_counted_before_sending(pacs, predicted, enqueued, mocker):
    """A task that dies mid-send has still used up an attempt: the delivery cannot stay
    pending for ever."""
    study = predicted()
    sr = Delivery.objects.get(study=study, kind=Delivery.Kind.MODEL_SR)
    seen = []
    mocker.patch(
        "xrayweb.dicomnet.sending._send",
        side_effect=lambda **kw: seen.append(Delivery.objects.get(pk=sr.pk).attempts),
    )
    delivery_attempt(delivery_id=sr.pk)
    assert seen == [1]
    sr.refresh_from_db()
    assert sr.status == Delivery.Status.DELIVERED and sr.attempts == 1


def test_of_two_tasks_that_read_the_same_delivery_only_one_sends(pacs, predicted, enqueued, mocker):
    from xrayweb.dicomnet.sending import _claim

    study = predicted()
    first, second = (Delivery.objects.get(study=study, kind="model_sr") for _ in range(2))
    assert _claim(first) and not _claim(second)


def test_studies_uploaded_as_png_have_no_dicom_study_and_send_nothing(
    pacs, active_version, staff, enqueued, django_capture_on_commit_callbacks
):
    study = study_create(user=staff, patient_id="P1", accession="A1", data=png_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        runtime.prediction_batch_run(study_id=study.pk, max_studies=1)
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(("gate", "expected"), [(True, 2), (False, 0)], ids=["read", "refused"])
def test_the_model_sr_sent_carries_the_prediction_sets_of_a_readable_film(
    active_version, staff, enqueued, django_capture_on_commit_callbacks, gate, expected
):
    """Built as it would be sent (no peer needed): the 90% set as coded classes beside the
    probabilities; a film the gate refused gets none."""
    Destination.objects.create(
        name="pacs", kind=Destination.Kind.CSTORE, ae_title="PACS", host="127.0.0.1", port=104
    )
    data = films.to_bytes(films.film(width=96))
    study = study_create(user=staff, patient_id="", accession="", data=data)
    sets = {"0.90": ["covid19", "normal"], "0.95": ["covid19", "normal", "viral_pneumonia"]}
    probabilities = {"covid19": 0.6, "normal": 0.3, "viral_pneumonia": 0.1}
    result = PredictionResult(
        study,
        "covid19",
        probabilities,
        {},
        {},
        assessment={"assessable": gate, "reasons": ["x"]},
        prediction_sets=sets,
    )
    with django_capture_on_commit_callbacks(execute=True):
        predictions_record(version=active_version, results=[result], cam_layers={}, duration_ms=1)
    (sr,) = Delivery.objects.filter(study=study, kind=Delivery.Kind.MODEL_SR)

    content = _texts(dcmread(io.BytesIO(delivery_object(delivery=sr))))

    at_90 = [i for i, text in enumerate(content) if text == "Prediction set at 90% coverage"]
    assert len(at_90) == expected
    assert [content[i + 1] for i in at_90] == ["COVID-19", "Normal"][:expected]
    assert content.count("Prediction set at 95% coverage") == (3 if gate else 0)


def test_what_is_sent_passes_dciodvfy(
    pacs, predicted, enqueued, tmp_path, radiologist, django_capture_on_commit_callbacks
):
    study = predicted(StudyID="S1")
    with django_capture_on_commit_callbacks(execute=True):
        review_submit(study=study, reviewer=radiologist, label="covid19", comment="as seen")
    for delivery in Delivery.objects.filter(study=study):
        path = tmp_path / f"{delivery.kind}.dcm"
        path.write_bytes(delivery_object(delivery=delivery))
        errors, _ = dciodvfy_report(path)
        assert errors == [], (delivery.kind, errors)


def test_the_destinations_command_adds_lists_and_removes(capsys):
    call_command(
        "dicom_destinations",
        "add",
        "--name",
        "pacs",
        "--ae-title",
        "ORTHANC",
        "--host",
        "pacs.local",
        "--port",
        "4242",
    )
    call_command(
        "dicom_destinations",
        "add",
        "--name",
        "web",
        "--stow-url",
        "https://pacs.local/dicom-web/studies",
    )
    call_command("dicom_destinations", "list")
    out = capsys.readouterr().out
    assert "pacs\tC-STORE\tORTHANC@pacs.local:4242\tenabled" in out
    assert "web\tSTOW-RS\thttps://pacs.local/dicom-web/studies\tenabled" in out
    call_command("dicom_destinations", "remove", "--name", "web")
    assert list(Destination.objects.values_list("name", flat=True)) == ["pacs"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--host", "h", "--port", "1"], "needs ae_title"),
        (["--name", "x", "--ae-title", "A" * 17, "--host", "h", "--port", "1"], "1 to 16"),
        (["--name", "x", "--ae-title", "A", "--host", "h", "--port", "70000"], "65535"),
        (["--name", "x", "--stow-url", "not a url"], "valid URL"),
        (["--name", "x", "--stow-url", "http://a/b", "--host", "h"], "not both"),
    ],
)
def test_the_destinations_command_refuses_bad_input_with_a_message(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("dicom_destinations", "add", *args)
    assert not Destination.objects.exists()


def test_removing_a_destination_with_history_disables_it_instead(pacs, predicted, enqueued, capsys):
    predicted()
    call_command("dicom_destinations", "remove", "--name", "pacs")
    pacs.refresh_from_db()
    assert not pacs.enabled
    assert "disabled, not removed" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no destination named"):
        call_command("dicom_destinations", "remove", "--name", "nope")
