"""The reading room in Chromium: the worklist's filter chips and header sorting, and the
review page's keyboard zoom and pan, shortcut help and the per-user shortcut setting."""

import os

import pytest
from playwright.sync_api import expect

from tests.xrayweb.dicomnet import films
from xrayweb.accounts.models import Preferences
from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference import runtime
from xrayweb.inference.services.registry import model_version_register
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def studies(tiny_bundle, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    model_version_register(bundle_path=tiny_bundle, activate=True)
    staff = user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    user_create_with_role(username="rad", password="pw-Test-12345", role="radiologist")
    for i, site in enumerate(["north", "south", "north"]):
        data = films.to_bytes(films.film(index=i, width=96, PatientID=f"P-{3 - i}"))
        study_create(user=staff, patient_id="", accession="", data=data, site=site)
    runtime.prediction_batch_run(study_id=Study.objects.order_by("pk").first().pk, max_studies=3)
    return list(Study.objects.order_by("pk"))


def test_filter_chips_and_header_sorting(page, login, live_server, studies):
    login("rad")
    page.goto(f"{live_server.url}/worklist/")
    rows = page.locator("tr[data-study-id]")
    expect(rows).to_have_count(3)
    expect(page.locator("details.more-filters")).not_to_have_attribute("open", "")
    page.click("details.more-filters summary")
    page.select_option("select[name=site]", "north")  # a choice of the sites seen
    page.click("#worklist-filters button[type=submit]")
    expect(rows).to_have_count(2)
    chip = page.locator('.chip[data-filter="site"]')
    expect(chip).to_contain_text("Site: north")
    expect(page.locator("details.more-filters")).to_have_attribute("open", "")

    header = page.locator("th:has(a[data-column=patient])")
    expect(header).to_have_attribute("aria-sort", "none")
    page.click("a[data-column=patient]")
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert "site=north" in page.url and "sort=patient" in page.url  # kept in the URL
    expect(rows.first.locator("td").nth(2)).to_have_text("P-1")
    page.click("a[data-column=patient]")
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(rows.first.locator("td").nth(2)).to_have_text("P-3")

    page.click('.chip[data-filter="site"] a')  # removing the chip keeps the sort
    expect(rows).to_have_count(3)
    expect(page.locator(".chip")).to_have_count(0)
    assert "sort=patient_desc" in page.url and "site=" not in page.url


def test_keyboard_zoom_pan_help_and_the_shortcut_setting(page, login, live_server, studies):
    login("rad")
    page.goto(f"{live_server.url}/studies/{studies[0].pk}/")
    stack = page.locator("#stack")
    expect(page.locator("#xray-canvas")).to_have_attribute("data-ready", "1", timeout=10_000)
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("+")
    expect(stack).to_have_attribute("data-scale", "1.25")
    page.keyboard.press("ArrowLeft")
    expect(stack).not_to_have_attribute("data-pan", "0,0")
    expect(page.locator("#live-status")).to_have_text("Zoom 125%")
    page.keyboard.press("0")
    expect(stack).to_have_attribute("data-scale", "1.00")
    page.keyboard.press("?")
    expect(page.locator("#shortcut-help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#shortcut-help")).to_be_hidden()

    page.click("#shortcut-setting button")  # off, remembered for this user
    expect(page.locator(".messages")).to_contain_text("Single-key shortcuts are off")
    assert Preferences.objects.get(user__username="rad").shortcuts is False
    page.locator("body").click(position={"x": 5, "y": 5})
    labels = page.locator("input[name=label]")
    checked = page.locator("input[name=label]:checked").get_attribute("value")
    other = next(
        i for i in range(labels.count()) if labels.nth(i).get_attribute("value") != checked
    )
    page.keyboard.press(str(other + 1))  # a digit chooses nothing now
    expect(page.locator("input[name=label]:checked")).to_have_value(checked)
    page.keyboard.press("+")
    expect(stack).to_have_attribute("data-scale", "1.00")  # no page-wide keys
    page.locator("#viewport").focus()  # in the focused view, zoom and pan keys still work
    page.keyboard.press("+")
    expect(stack).to_have_attribute("data-scale", "1.25")
    page.click("#zoom-out")
    expect(stack).to_have_attribute("data-scale", "1.00")
    page.click("#shortcut-setting button")
    expect(page.locator(".messages")).to_contain_text("Single-key shortcuts are on")


DROP = """([name, b64, bad]) => {
  const dt = new DataTransfer();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
  dt.items.add(new File([new TextEncoder().encode("not an image")], bad, { type: "image/png" }));
  return dt;
}"""


def test_drag_and_drop_upload_with_per_file_progress_and_results(
    page, login, live_server, tiny_bundle, sample_images, settings, tmp_path
):
    import base64

    settings.MEDIA_ROOT = tmp_path / "media"
    model_version_register(bundle_path=tiny_bundle, activate=True)
    user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    login("stf")
    page.goto(f"{live_server.url}/upload/")
    page.fill("input[name=patient_id]", "DND-1")
    page.fill("input[name=accession]", "ACC-DND")
    film = sample_images[0]
    transfer = page.evaluate_handle(
        DROP, [film.name, base64.b64encode(film.read_bytes()).decode(), "broken.png"]
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    files = page.locator("#upload-files li")
    expect(files).to_have_count(2)
    page.click("form.upload button[type=submit]")
    good, bad = files.nth(0), files.nth(1)
    expect(good.locator(".file-result")).to_contain_text("queued as study #")
    expect(good.locator("progress")).to_have_attribute("value", "100")
    expect(bad.locator(".file-result")).to_contain_text("not a PNG or JPEG image")
    study = Study.objects.get(patient_id="DND-1")
    row = page.locator(f'tr[data-study-id="{study.pk}"]')
    expect(row.locator(".badge")).to_have_text("queued")
    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)  # the worker's job
    expect(row.locator(".badge")).to_have_text("done", timeout=10_000)
    expect(page.locator("#live-status")).to_contain_text(f"Study {study.pk}: done")
    expect(good.locator(".file-result")).to_contain_text(f"study #{study.pk}: done")


def test_the_review_page_announces_when_its_study_is_done(
    page, login, live_server, tiny_bundle, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    model_version_register(bundle_path=tiny_bundle, activate=True)
    staff = user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    user_create_with_role(username="rad", password="pw-Test-12345", role="radiologist")
    data = films.to_bytes(films.film(width=96))
    study = study_create(user=staff, patient_id="", accession="", data=data)
    login("rad")
    page.goto(f"{live_server.url}/studies/{study.pk}/")
    expect(page.locator("#study-status")).to_have_text("queued")
    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)  # the worker's job
    expect(page.locator("#study-status")).to_have_text("done", timeout=10_000)
    expect(page.locator("#live-status")).to_contain_text(f"Study {study.pk}: done")
    page.click("#reload")
    expect(page.locator("#xray-canvas")).to_have_attribute("data-ready", "1", timeout=10_000)
    expect(page.locator("#review-form")).to_be_visible()
