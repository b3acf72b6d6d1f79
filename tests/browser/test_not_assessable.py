"""A staff member uploads a CT slice and sees at once, on the upload page, that it is not
assessable and why, never a diagnosis: as a DICOM (the header says CT) and as a JPEG (only
the shipped bundle's learned gate can tell)."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from classifier import DEFAULT_BUNDLE
from tests.xrayweb.dicom_corpus import dataset, source_image, to_bytes
from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference import runtime
from xrayweb.inference.services.registry import model_version_register
from xrayweb.studies.models import Study

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# A CT slice of a patient in the shipped gate's test split: the gate never trained on it.
CT_SLICE = Path(__file__).parents[1] / "data/not_cxr_sample/images/ieee8023_ct_axial_16745_7_2.jpg"


def _upload_and_predict(page, login, path: Path, **fields) -> Study:
    user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    login("stf")
    for name, value in fields.items():
        page.fill(f"input[name={name}]", value)
    page.set_input_files("input[name=images]", str(path))
    page.click("form.upload button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("1 image(s) queued")
    study = Study.objects.get()
    runtime._predictors.clear()
    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)  # the worker, in-process
    return study


def test_a_ct_dicom_shows_not_assessable_on_the_upload_page(
    page, login, tiny_bundle, sample_images, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    model_version_register(bundle_path=tiny_bundle, activate=True)
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(dataset(source_image(sample_images[0]), bits=12, Modality="CT")))
    study = _upload_and_predict(page, login, path)
    row = page.locator(f'tr[data-study-id="{study.pk}"]')
    expect(row.locator(".badge")).to_have_text("done", timeout=10_000)  # no reload
    expect(row.locator(".label")).to_have_text(
        "not assessable: modality CT is not a projection radiograph"
    )
    assert study.predictions.get().label not in row.locator(".label").inner_text()


def test_a_ct_slice_as_jpeg_shows_not_assessable_on_the_upload_page(
    page, login, settings, tmp_path
):
    """Needs the learned gate in the shipped bundle (classifier/models/default.safetensors):
    nothing in a JPEG's header says CT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    model_version_register(bundle_path=DEFAULT_BUNDLE, activate=True)
    study = _upload_and_predict(page, login, CT_SLICE, patient_id="CT-1", accession="CT-A1")
    row = page.locator(f'tr[data-study-id="{study.pk}"]')
    expect(row.locator(".badge")).to_have_text("done", timeout=30_000)
    expect(row.locator(".label")).to_contain_text("not assessable: ")
    study.refresh_from_db()
    assert study.assessability == Study.Assessability.NOT_ASSESSABLE
    assert study.predictions.get().label not in row.locator(".label").inner_text()
