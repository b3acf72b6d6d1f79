import io

import pytest
from PIL import Image

from xrayweb.errors import ApplicationError
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import studies_upload_batch, study_create


def _stored_files(settings) -> list:
    """The stored images (each study also stores its worklist thumbnail beside them)."""
    root = settings.MEDIA_ROOT / "studies"
    files = list(root.iterdir()) if root.exists() else []
    return [f for f in files if not f.name.endswith("-thumb.png")]


def _thumbnails(settings) -> list:
    root = settings.MEDIA_ROOT / "studies"
    return list(root.glob("*-thumb.png")) if root.exists() else []


def test_a_valid_png_becomes_a_queued_study_and_enqueues_inference(
    staff, png, settings, django_capture_on_commit_callbacks, mocker
):
    delay = mocker.patch("xrayweb.inference.tasks.predict_study.delay")
    with django_capture_on_commit_callbacks(execute=True):
        study = study_create(
            user=staff, patient_id="P1", accession="A1", data=png(), filename="cxr.png"
        )
    study.refresh_from_db()
    assert study.status == Study.Status.QUEUED
    assert (study.image_width, study.image_height, study.image_format) == (64, 48, "PNG")
    assert study.image.name.startswith("studies/") and "cxr" not in study.image.name
    assert len(_stored_files(settings)) == 1 and len(_thumbnails(settings)) == 1
    delay.assert_called_once_with(study.pk)


def _truncated_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("L", (256, 256), 128).save(out, "JPEG")
    return out.getvalue()[:300]


def _big_png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (8000, 8000)).save(out, "PNG")  # 64 MP, tiny on disk
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image", "not a PNG or JPEG"),
        (_truncated_jpeg(), "truncated or corrupt"),
        (_big_png(), "above the limit"),
    ],
)
def test_bad_images_are_refused_with_a_message_and_nothing_is_stored(
    staff, settings, data, message
):
    with pytest.raises(ApplicationError, match=message) as info:
        study_create(user=staff, patient_id="P1", accession="A1", data=data, filename="x")
    assert 400 <= info.value.status < 500
    assert Study.objects.count() == 0
    assert _stored_files(settings) == [] and _thumbnails(settings) == []


def test_a_tiff_is_refused_even_though_pillow_could_open_it(staff):
    out = io.BytesIO()
    Image.new("L", (64, 64)).save(out, "TIFF")
    with pytest.raises(ApplicationError, match="not a PNG or JPEG"):
        study_create(user=staff, patient_id="P1", accession="A1", data=out.getvalue())


@pytest.mark.parametrize(("patient", "accession"), [("", "A1"), ("P1", " "), ("x" * 65, "A")])
def test_missing_or_overlong_identifiers_are_refused(staff, png, patient, accession):
    with pytest.raises(ApplicationError):
        study_create(user=staff, patient_id=patient, accession=accession, data=png())
    assert Study.objects.count() == 0


def test_a_batch_upload_gives_each_file_its_outcome_in_order(staff, png):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [
        SimpleUploadedFile("a.png", png(seed=1)),
        SimpleUploadedFile("b.png", b"not an image"),
        SimpleUploadedFile("c.png", png(seed=2)),
    ]
    outcomes = studies_upload_batch(user=staff, files=files, patient_id="P", accession="A")
    assert [o.name for o in outcomes] == ["a.png", "b.png", "c.png"]
    assert [o.study is not None for o in outcomes] == [True, False, True]
    assert outcomes[1].error is not None and Study.objects.count() == 2
    with pytest.raises(ApplicationError, match="at least one"):
        studies_upload_batch(user=staff, files=[], patient_id="P", accession="A")


def test_upload_page_takes_several_files_and_reports_each_bad_one(client, staff, png, settings):
    client.force_login(staff)
    files = [
        io.BytesIO(png(seed=1)),
        io.BytesIO(b"hello"),
        io.BytesIO(png(seed=2)),
        io.BytesIO(b""),
    ]
    for f, name in zip(files, ["a.png", "b.png", "c.png", "d.png"], strict=True):
        f.name = name
    response = client.post(
        "/upload/", {"patient_id": "P9", "accession": "ACC9", "images": files}, follow=True
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "2 image(s) queued" in text
    assert "b.png: not a PNG or JPEG image." in text
    assert "d.png: the file is empty." in text
    assert Study.objects.filter(patient_id="P9").count() == 2
    assert len(_stored_files(settings)) == 2


def test_upload_page_answers_400_when_every_file_is_bad(client, staff):
    client.force_login(staff)
    bad = io.BytesIO(b"nope")
    bad.name = "bad.jpg"
    response = client.post("/upload/", {"patient_id": "P", "accession": "A", "images": [bad]})
    assert response.status_code == 400
    assert "bad.jpg: not a PNG or JPEG image." in response.content.decode()


def test_the_upload_form_refuses_an_oversized_file_before_reading_it(staff, settings):
    """Issue 27: the page read every file into memory before checking its size."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MAX_UPLOAD_BYTES = 1024

    class Unread(SimpleUploadedFile):
        def read(self, *args, **kwargs):
            raise AssertionError("the oversized file was read")

    big = Unread("big.png", b"\x89PNG" + b"\0" * 2048, content_type="image/png")
    (outcome,) = studies_upload_batch(user=staff, files=[big], patient_id="P", accession="A")
    assert outcome.study is None and outcome.error.status == 413
    assert "larger than" in outcome.error.message
