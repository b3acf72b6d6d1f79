"""Issue 5's flow in real Chromium: staff upload, result, radiologist corrects with the
keyboard, and the agreement dashboard's confusion matrix changes."""

import os

import pytest
from playwright.sync_api import expect

from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference import runtime
from xrayweb.inference.services.registry import model_version_register
from xrayweb.studies.models import Study

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _cell(page, truth, predicted):
    return page.locator(f'#confusion td[data-true="{truth}"][data-predicted="{predicted}"]')


def test_radiologist_corrects_with_the_keyboard_and_the_agreement_matrix_changes(
    page, login, live_server, tiny_bundle, sample_images, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    version = model_version_register(bundle_path=tiny_bundle, activate=True)
    user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    user_create_with_role(username="rad", password="pw-Test-12345", role="radiologist")

    login("stf")
    page.fill("input[name=patient_id]", "KEYS-1")
    page.fill("input[name=accession]", "ACC-K1")
    page.fill("input[name=site]", "north")
    page.select_option("select[name=view]", "PA")
    page.set_input_files("input[name=images]", [str(p) for p in sample_images[:2]])
    page.click("form.upload button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("2 image(s) queued")
    studies = list(Study.objects.filter(patient_id="KEYS-1").order_by("pk"))
    runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=2)  # the worker's job
    for study in studies:
        row = page.locator(f'tr[data-study-id="{study.pk}"]')
        expect(row.locator(".badge")).to_have_text("done", timeout=10_000)
    predicted = {s.pk: s.predictions.get().label for s in studies}

    page.click("button:has-text('Log out')")
    login("rad")
    page.goto(f"{live_server.url}/agreement/")
    expect(page.locator("#agreement-n")).to_have_text("0")

    page.click("header a.next-case")
    expect(page.locator("h1")).to_contain_text("Study #")
    study_id = int(page.url.split("/studies/")[1].split("/")[0])
    label = predicted[study_id]
    classes = list(version.classes)
    corrected = next(c for c in classes if c != label)

    canvas = page.locator("#xray-canvas")
    expect(canvas).to_have_attribute("data-ready", "1", timeout=10_000)
    page.locator("#window-width").fill("100")
    expect(canvas).to_have_attribute("data-window", "100/128")
    page.locator("#viewport").hover()
    page.mouse.wheel(0, -300)
    expect(page.locator("#stack")).not_to_have_attribute("data-scale", "1.00")

    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press(str(classes.index(corrected) + 1))
    expect(page.locator(f"input[name=label][value={corrected}]")).to_be_checked()
    page.keyboard.press("c")
    page.keyboard.type("Typed with the keyboard; J here is text.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_contain_text("Review saved")
    first = page.locator(".history li").first
    expect(first).to_contain_text(corrected)
    expect(first).to_contain_text("corrected model")
    expect(first).to_contain_text("J here is text.")
    expect(page.locator("#final-label")).to_have_text(corrected)

    page.keyboard.press("j")
    other = next(pk for pk in predicted if pk != study_id)
    expect(page).to_have_url(f"{live_server.url}/studies/{other}/?needs_me=yes&sort=uncertain")

    page.goto(f"{live_server.url}/agreement/")
    expect(page.locator("#agreement-n")).to_have_text("1")
    expect(_cell(page, corrected, label)).to_have_text("1")
    expect(page.locator("#agreement-rate")).to_have_text("0.000")
    page.screenshot(path=str(tmp_path / "agreement.png"), full_page=True)
