"""A DICOM file through the browser: upload, prediction, the review page at the file's own
window with its header, and the de-identified export link."""

import os

import pytest
from playwright.sync_api import expect
from pydicom import dcmread

from tests.xrayweb.dicom_corpus import dataset, source_image, to_bytes
from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference import runtime
from xrayweb.inference.services.registry import model_version_register
from xrayweb.studies.models import Study

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def test_dicom_upload_display_and_deidentified_export(
    page, login, live_server, tiny_bundle, sample_images, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    model_version_register(bundle_path=tiny_bundle, activate=True)
    user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    user_create_with_role(username="rad", password="pw-Test-12345", role="radiologist")
    path = tmp_path / "chest.dcm"
    grey = source_image(sample_images[0])
    path.write_bytes(
        to_bytes(
            dataset(
                grey,
                bits=12,
                monochrome1=True,
                WindowCenter="1800",
                WindowWidth="3000",
                BurnedInAnnotation="NO",  # the export needs it (or a radiologist's check)
            )
        )
    )

    login("stf")
    page.set_input_files("input[name=images]", str(path))  # identifiers come from the header
    page.click("form.upload button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("1 image(s) queued")
    study = Study.objects.get()
    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)
    expect(page.locator(f'tr[data-study-id="{study.pk}"] .badge')).to_have_text("done")

    page.click("button:has-text('Log out')")
    login("rad")
    page.goto(f"{live_server.url}/studies/{study.pk}/")
    expect(page.locator("#dicom-header")).to_contain_text("AcmeRad")
    expect(page.locator("body")).to_contain_text("MRN-12345")
    canvas = page.locator("#xray-canvas")
    expect(canvas).to_have_attribute("data-ready", "1", timeout=10_000)
    study.refresh_from_db()
    expect(canvas).to_have_attribute(
        "data-window", f"{study.window_width:g}/{study.window_level:g}"
    )
    with page.expect_download() as download:
        page.click("text=De-identified DICOM")
    exported = dcmread(download.value.path())
    assert exported.PatientIdentityRemoved == "YES"
    assert str(exported.PatientName) != "Doe^Jane" and exported.PatientID != "MRN-12345"
