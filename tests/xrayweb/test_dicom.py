"""DICOM in (every bit depth, photometric and compression we support), bad DICOM refused
with a clear 4xx, DICOM-aware display, de-identified export and a Secondary Capture out."""

import io

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from tests.xrayweb.dicom_corpus import (
    IDENTITY,
    NESTED_PATIENT_ID,
    SOURCE_AE,
    broken_cases,
    dataset,
    source_image,
    to_bytes,
    valid_cases,
)
from xrayweb.audit.models import AuditEvent
from xrayweb.inference import runtime
from xrayweb.studies.dicom import dicom_decode
from xrayweb.studies.models import Study

API = "/api/studies/"


@pytest.fixture(scope="module")
def grey(request):
    from tests.conftest import SAMPLE_DIR

    return source_image(sorted((SAMPLE_DIR / "images").glob("*.jpg"))[0])


@pytest.fixture(scope="module")
def corpus(grey):
    return valid_cases(grey)


def _post(client, name: str, data: bytes, **fields):
    upload = io.BytesIO(data)
    upload.name = name
    return client.post(API, {"image": upload, **fields}, format="multipart")


def test_every_valid_file_decodes_to_the_source_image(corpus):
    assert len(corpus) == 15
    for case in corpus:
        decoded = dicom_decode(data=case.data, filename=case.name)
        shown = np.asarray(Image.open(io.BytesIO(decoded.png))).astype(int)
        diff = np.abs(shown - case.expected.astype(int))
        if case.lossy:
            assert diff.mean() < 2.0 and diff.max() <= 12, case.name
        else:
            assert diff.max() <= 1, case.name
        assert decoded.fields["patient_id"] == "MRN-12345"
        assert decoded.fields["view"] == "PA" and decoded.scope_warnings == []


def test_every_valid_file_uploads_and_is_predicted_end_to_end(
    corpus, api_client, staff, active_version
):
    api_client.force_authenticate(staff)
    ids = []
    for case in corpus:
        response = _post(api_client, f"{case.name}.dcm", case.data)
        assert response.status_code == 201, (case.name, response.json())
        ids.append(response.json()["id"])
    predictions = runtime.prediction_batch_run(study_id=ids[0], max_studies=len(ids))
    assert len(predictions) == len(corpus)
    study = Study.objects.get(pk=ids[0])
    assert study.status == "done" and study.current_prediction is not None
    assert (study.patient_id, study.accession) == ("MRN-12345", "ACC-DCM-1")
    assert study.patient_sex == "F" and study.patient_age == "054Y"
    assert study.modality == "DX" and study.view == "PA" and study.body_part == "CHEST"
    assert study.manufacturer == "AcmeRad" and study.study_date == "20250102"
    assert study.study_instance_uid and study.series_instance_uid and study.sop_instance_uid
    assert study.original.name.startswith("originals/") and study.display_image
    assert study.window_level is not None and study.window_width is not None


def test_bad_dicom_files_get_a_clear_4xx_and_nothing_is_stored(grey, api_client, staff):
    api_client.force_authenticate(staff)
    for name, (data, phrase) in broken_cases(grey).items():
        response = _post(api_client, name, data, patient_id="P", accession="A")
        assert 400 <= response.status_code < 500, (name, response.status_code)
        detail = response.json()["detail"]
        assert detail.startswith(f"{name}: ") and phrase in detail.split(": ", 1)[1], detail
    assert Study.objects.count() == 0


def test_the_same_sop_instance_twice_points_to_the_existing_study(grey, api_client, staff, client):
    data = to_bytes(dataset(grey, bits=12))
    api_client.force_authenticate(staff)
    first = _post(api_client, "a.dcm", data).json()["id"]
    again = _post(api_client, "again.dcm", data)
    assert again.status_code == 409
    assert again.json()["study"] == first and f"study #{first}" in again.json()["detail"]
    client.force_login(staff)
    upload = io.BytesIO(data)
    upload.name = "page.dcm"
    page = client.post("/upload/", {"images": [upload]}, follow=True).content.decode()
    assert f'href="/studies/{first}/"' in page and "already uploaded" in page
    assert Study.objects.count() == 1


@pytest.mark.parametrize(
    ("header", "warning"),
    [
        ({"Modality": "CT"}, "modality CT"),
        ({"ViewPosition": "LL"}, "lateral"),
        ({"BodyPartExamined": "KNEE"}, "not the chest"),
    ],
)
def test_out_of_scope_images_upload_with_a_warning(grey, client, staff, header, warning):
    client.force_login(staff)
    upload = io.BytesIO(to_bytes(dataset(grey, bits=12, **header)))
    upload.name = "scope.dcm"
    page = client.post("/upload/", {"images": [upload]}, follow=True).content.decode()
    assert warning in page and "trained on frontal chest X-rays" in page
    study = Study.objects.get()
    assert study.out_of_scope and warning in study.scope_warning


def test_review_page_shows_the_header_and_starts_at_the_files_window(
    grey, client, staff, radiologist
):
    client.force_login(staff)
    upload = io.BytesIO(to_bytes(dataset(grey, bits=12, WindowCenter="1000", WindowWidth="800")))
    upload.name = "w.dcm"
    client.post("/upload/", {"images": [upload]})
    study = Study.objects.get()
    client.force_login(radiologist)
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert 'id="dicom-header"' in page and "AcmeRad" in page and study.sop_instance_uid in page
    assert f'data-src="/media/{study.display_image.name}"' in page
    # The file's window, on the display image's 0..255 scale of the full stored range.
    span = float(grey.max()) * 4095 / 255 - float(grey.min()) * 4095 / 255
    assert study.window_width == pytest.approx(800 / span * 255, abs=1.0)
    assert f'value="{study.window_width:g}"' in page


def test_export_is_de_identified_with_consistently_remapped_uids(
    grey, api_client, staff, radiologist
):
    first = dataset(grey, bits=12, BurnedInAnnotation="NO")
    second = dataset(grey, bits=12, BurnedInAnnotation="NO")
    second.StudyInstanceUID = first.StudyInstanceUID  # two images of one study
    api_client.force_authenticate(staff)
    ids = [
        _post(api_client, f"{i}.dcm", to_bytes(ds)).json()["id"]
        for i, ds in enumerate((first, second))
    ]
    api_client.force_authenticate(radiologist)
    response = api_client.get(f"{API}{ids[0]}/export.dcm")
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    out = dcmread(io.BytesIO(response.content))
    assert out.PatientIdentityRemoved == "YES" and "Basic Profile" in out.DeidentificationMethod
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    for keyword, value in IDENTITY.items():
        if keyword in (
            "Modality",
            "ViewPosition",
            "BodyPartExamined",
            "PatientSex",
            "Manufacturer",
        ):
            continue
        assert str(out.get(keyword, "") or "") != value, keyword
        assert value.encode() not in response.content, keyword
    assert b"Doe^Jane" not in response.content and not any(e.tag.is_private for e in out)
    for hidden in (NESTED_PATIENT_ID, SOURCE_AE, "Nested Hospital", first.FrameOfReferenceUID):
        assert hidden.encode() not in response.content, hidden
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.StudyInstanceUID != first.StudyInstanceUID
    assert out.SOPInstanceUID != first.SOPInstanceUID
    again = dcmread(io.BytesIO(api_client.get(f"{API}{ids[0]}/export.dcm").content))
    other = dcmread(io.BytesIO(api_client.get(f"{API}{ids[1]}/export.dcm").content))
    assert again.SOPInstanceUID == out.SOPInstanceUID  # the same every time
    assert other.StudyInstanceUID == out.StudyInstanceUID  # still one study
    assert other.SOPInstanceUID != out.SOPInstanceUID
    assert np.array_equal(out.pixel_array, first.pixel_array)
    assert AuditEvent.objects.filter(action="export.dicom", study_id=ids[0]).count() == 2


def test_overlay_secondary_capture_references_the_source(
    grey, api_client, staff, radiologist, active_version
):
    source = dataset(grey, bits=12)
    api_client.force_authenticate(staff)
    study_id = _post(api_client, "s.dcm", to_bytes(source)).json()["id"]
    api_client.force_authenticate(radiologist)
    assert api_client.get(f"{API}{study_id}/overlay.dcm").status_code == 404  # no heatmap yet
    runtime.prediction_batch_run(study_id=study_id, max_studies=1)
    response = api_client.get(f"{API}{study_id}/overlay.dcm")
    assert response.status_code == 200
    sc = dcmread(io.BytesIO(response.content))
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID
    assert sc.ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.pixel_array.shape == (*grey.shape, 3)
    again = dcmread(io.BytesIO(api_client.get(f"{API}{study_id}/overlay.dcm").content))
    assert again.SOPInstanceUID == sc.SOPInstanceUID  # the same instance, not a duplicate


def test_png_studies_have_no_dicom_export_and_anonymous_users_get_nothing(
    api_client, staff, radiologist, png
):
    api_client.force_authenticate(staff)
    study_id = _post(api_client, "x.png", png(), patient_id="P", accession="A").json()["id"]
    api_client.force_authenticate(radiologist)
    response = api_client.get(f"{API}{study_id}/export.dcm")
    assert response.status_code == 404 and "not DICOM" in response.json()["detail"]
    api_client.force_authenticate(None)
    assert api_client.get(f"{API}{study_id}/export.dcm").status_code == 401


def test_the_upload_page_takes_dicom_mixed_with_png(grey, client, staff, png):
    client.force_login(staff)
    dicom = io.BytesIO(to_bytes(dataset(grey, bits=16)))
    dicom.name = "chest.dcm"
    image = io.BytesIO(png())
    image.name = "chest.png"
    page = client.post(
        "/upload/",
        {"images": [dicom, image], "patient_id": "MIX-1", "accession": "ACC-MIX"},
        follow=True,
    ).content.decode()
    assert "2 image(s) queued" in page
    formats = sorted(Study.objects.values_list("image_format", "sop_instance_uid"))
    assert [f for f, _ in formats] == ["PNG", "PNG"] and sum(bool(u) for _, u in formats) == 1
    # The uploader's identifiers win over the header's.
    assert set(Study.objects.values_list("patient_id", flat=True)) == {"MIX-1"}


def test_only_radiologists_and_admins_export_dicom_and_burned_in_text_is_refused(
    grey, api_client, staff, radiologist, make_user
):
    api_client.force_authenticate(staff)
    plain = _post(
        api_client, "a.dcm", to_bytes(dataset(grey, bits=12, BurnedInAnnotation="NO"))
    ).json()["id"]
    burned = _post(
        api_client, "b.dcm", to_bytes(dataset(grey, bits=12, BurnedInAnnotation="YES"))
    ).json()["id"]
    for user in (staff, make_user(None)):
        api_client.force_authenticate(user)
        assert api_client.get(f"{API}{plain}/export.dcm").status_code == 403
        assert api_client.get(f"{API}{plain}/overlay.dcm").status_code == 403
    api_client.force_authenticate(radiologist)
    refused = api_client.get(f"{API}{burned}/export.dcm")
    assert refused.status_code == 409 and "burned-in" in refused.json()["detail"]


# De-identification (issue 27): each a finding of the security review.


def test_without_burned_in_annotation_no_the_export_waits_for_a_radiologists_check(
    grey, api_client, staff, radiologist
):
    """Before, an absent BurnedInAnnotation (common for CR) was exported as if clean."""
    api_client.force_authenticate(staff)
    study_id = _post(api_client, "cr.dcm", to_bytes(dataset(grey, bits=12))).json()["id"]
    assert api_client.post(f"{API}{study_id}/burned-in-check/").status_code == 403
    api_client.force_authenticate(radiologist)
    refused = api_client.get(f"{API}{study_id}/export.dcm")
    assert refused.status_code == 409
    assert "BurnedInAnnotation is absent" in refused.json()["detail"]
    assert not AuditEvent.objects.filter(action="export.dicom").exists()
    checked = api_client.post(f"{API}{study_id}/burned-in-check/")
    assert checked.status_code == 200
    assert checked.json()["burned_in_checked_by"] == radiologist.username
    event = AuditEvent.objects.get(action="study.burned_in_check")
    assert event.actor == radiologist and event.study_id == study_id
    assert event.detail == {"burned_in_annotation": "absent", "seen": "no burned-in text"}
    assert api_client.get(f"{API}{study_id}/export.dcm").status_code == 200


def test_a_header_that_says_burned_in_yes_cannot_be_checked_away(
    grey, api_client, staff, radiologist
):
    api_client.force_authenticate(staff)
    data = to_bytes(dataset(grey, bits=12, BurnedInAnnotation="YES"))
    study_id = _post(api_client, "b.dcm", data).json()["id"]
    api_client.force_authenticate(radiologist)
    refused = api_client.post(f"{API}{study_id}/burned-in-check/")
    assert refused.status_code == 409 and "BurnedInAnnotation YES" in refused.json()["detail"]
    assert not AuditEvent.objects.filter(action="study.burned_in_check").exists()
    assert api_client.get(f"{API}{study_id}/export.dcm").status_code == 409


def test_the_export_zeroes_the_senders_preamble(grey):
    from xrayweb.studies.dicom_export import deidentify

    data = bytearray(to_bytes(dataset(grey, bits=12, BurnedInAnnotation="NO")))
    assert data[128:132] == b"DICM"
    data[:128] = b"Jane Doe, MRN 12345, St Elsewhere".ljust(128, b" ")
    out = deidentify(bytes(data), secret=b"k")
    assert out[:128] == b"\x00" * 128 and out[128:132] == b"DICM"
    assert b"Jane Doe" not in out


def test_each_uid_is_remapped_once_even_in_sequences_the_profile_rewrites(grey):
    """Before, a UID inside a sequence the profile itself rewrites (e.g. ContentSequence,
    ReferencedPerformedProcedureStepSequence) was remapped twice, so it no longer matched the
    same UID remapped once elsewhere in the export."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from xrayweb.studies.dicom_export import deidentify, remap_uid

    ds = dataset(grey, bits=12, BurnedInAnnotation="NO")
    source = "1.2.826.0.1.3680043.2.1125.77"
    for keyword in (
        "ContentSequence",
        "ReferencedPerformedProcedureStepSequence",
        "SourceImageSequence",
    ):
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        item.ReferencedSOPInstanceUID = source
        setattr(ds, keyword, Sequence([item]))
    out = dcmread(io.BytesIO(deidentify(to_bytes(ds), secret=b"k")))
    once = remap_uid(source, secret=b"k")
    found = {
        keyword: out[keyword][0].ReferencedSOPInstanceUID
        for keyword in (
            "ContentSequence",
            "ReferencedPerformedProcedureStepSequence",
            "SourceImageSequence",
        )
        if keyword in out and len(out[keyword].value)
    }
    assert found and set(found.values()) == {once}, found
