"""Patient identifiers never reach logs, error messages or task arguments (tasks carry primary
keys: tests/xrayweb/test_broker.py); every view of a study is in the audit log."""

import logging

from django.core.files.uploadedfile import SimpleUploadedFile

from xrayweb.audit.models import AuditEvent
from xrayweb.inference import runtime
from xrayweb.inference.tasks import predict_study
from xrayweb.studies.models import Study

PATIENT, ACCESSION = "PRIV-SECRET-4711", "ACC-SECRET-0815"


def test_identifiers_stay_out_of_logs_and_error_messages(
    api_client, client, staff, radiologist, active_version, png, caplog, mocker, settings
):
    settings.INFERENCE_RETRY_BACKOFF = 0
    caplog.set_level(logging.DEBUG)
    api_client.force_authenticate(staff)
    bodies = []
    # Refused uploads: the messages name the problem, never the patient.
    for image in (b"", b"not an image", png() + b"<html>"):
        response = api_client.post(
            "/api/studies/",
            {
                "image": SimpleUploadedFile("x.png", image),
                "patient_id": PATIENT,
                "accession": ACCESSION,
            },
            format="multipart",
        )
        assert response.status_code in (400, 413)
        bodies.append(response.content.decode())
    # An accepted one, a failed attempt (an injected fault), the retry, and every page.
    created = api_client.post(
        "/api/studies/",
        {
            "image": SimpleUploadedFile("x.png", png()),
            "patient_id": PATIENT,
            "accession": ACCESSION,
        },
        format="multipart",
    )
    study = Study.objects.get(pk=created.json()["id"])
    real = runtime.predictor_for
    calls = {"n": 0}

    def flaky(version):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected fault")
        return real(version)

    mocker.patch.object(runtime, "predictor_for", side_effect=flaky)
    predict_study.apply(args=[study.pk])
    study.refresh_from_db()
    assert study.status == "done" and calls["n"] == 2
    client.force_login(radiologist)
    for path in (f"/studies/{study.pk}/", "/worklist/", f"/api/studies/{study.pk}/"):
        assert client.get(path).status_code == 200
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "the run logged something"
    for secret in (PATIENT, ACCESSION):
        assert secret not in logged
        assert all(secret not in body for body in bodies)
        assert secret not in study.failure_reason


def test_every_view_of_a_study_is_audited(client, api_client, radiologist, predicted):
    study = predicted({"covid19": 0.8, "normal": 0.2})
    client.force_login(radiologist)
    api_client.force_authenticate(radiologist)
    client.get(f"/studies/{study.pk}/")
    api_client.get(f"/api/studies/{study.pk}/")
    views = AuditEvent.objects.filter(action=AuditEvent.Action.STUDY_VIEW, study=study)
    assert views.count() == 2 and {e.actor for e in views} == {radiologist}


def test_patient_images_are_never_cached_and_are_not_world_readable_on_disk(
    client, radiologist, predicted, settings
):
    """Issue 27: they were sent ``private, max-age=3600`` and written 0644."""
    import os
    import stat
    from pathlib import Path

    study = predicted({"covid19": 0.8, "normal": 0.2})
    client.force_login(radiologist)
    paths = [study.image.name, *study.current_prediction.heatmaps.values()]
    for name in paths:
        response = client.get(f"/media/{name}")
        assert response.status_code == 200
        assert response["Cache-Control"] == "private, no-store", name
        mode = stat.S_IMODE(os.stat(Path(settings.MEDIA_ROOT) / name).st_mode)
        assert mode & 0o007 == 0, f"{name} is {oct(mode)}"
        directory = stat.S_IMODE(os.stat((Path(settings.MEDIA_ROOT) / name).parent).st_mode)
        assert directory & 0o007 == 0, f"{name}'s folder is {oct(directory)}"
