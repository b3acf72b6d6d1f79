"""The skeleton's flows in real Chromium: upload with live status, then review with overlay."""

import os
import re

import pytest
from playwright.sync_api import expect

from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference import runtime
from xrayweb.inference.services.registry import model_version_register
from xrayweb.studies.models import Study

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
# Playwright's sync API runs an event loop in this thread; Django's ORM calls are still sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _login(page, live_server, username):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-Test-12345")
    page.click("button[type=submit]")


# Both rectangles in one frame: two separate reads can straddle a scroll or a zoom step.
SAME_BOX = """([a, b]) => {
  const r = [a, b].map((s) => document.querySelector(s).getBoundingClientRect());
  return ["x", "y", "width", "height"].every((k) => Math.round(r[0][k]) === Math.round(r[1][k]));
}"""


def _same_box(page, a: str, b: str) -> bool:
    """Whether ``a`` lies exactly over ``b``, waiting (up to 5 s) for the frame that settles."""
    page.wait_for_function(SAME_BOX, arg=[a, b], timeout=5_000)
    return page.evaluate(SAME_BOX, [a, b])


def _box(page, selector: str) -> tuple[int, ...]:
    box = page.locator(selector).bounding_box()
    return tuple(round(box[k]) for k in ("x", "y", "width", "height"))


def test_staff_uploads_and_sees_status_change_then_radiologist_corrects(
    page, live_server, tiny_bundle_with_lungs, sample_images, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    version = model_version_register(bundle_path=tiny_bundle_with_lungs, activate=True)
    user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    user_create_with_role(username="rad", password="pw-Test-12345", role="radiologist")

    _login(page, live_server, "stf")
    expect(page.locator("h1")).to_have_text("Upload chest X-rays")
    page.fill("input[name=patient_id]", "BROWSER-1")
    page.fill("input[name=accession]", "ACC-B1")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("input[name=images]", [str(sample_images[0]), str(bad)])
    page.click("form.upload button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("1 image(s) queued")
    expect(page.locator(".messages")).to_contain_text("notes.png: not a PNG or JPEG image.")
    study = Study.objects.get(patient_id="BROWSER-1")
    row = page.locator(f'tr[data-study-id="{study.pk}"]')
    expect(row.locator(".badge")).to_have_text("queued")

    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)[
        0
    ]  # what the worker does, here in-process
    prediction = study.predictions.get()
    expect(row.locator(".badge")).to_have_text("done", timeout=10_000)  # no reload
    expect(row.locator(".label")).to_have_text(prediction.label)

    page.click("button:has-text('Log out')")
    _login(page, live_server, "rad")
    expect(page.locator("h1")).to_have_text("Worklist")
    page.click(f"a[href='/studies/{study.pk}/']")
    expect(page.locator(".prediction")).to_contain_text(prediction.label)
    overlay = page.locator("#overlay")
    expect(overlay).to_be_visible()
    page.uncheck("#overlay-toggle")
    expect(overlay).to_be_hidden()
    page.check("#overlay-toggle")
    page.locator("#overlay-opacity").fill("80")
    expect(overlay).to_have_css("opacity", "0.8")
    page.select_option("#overlay-layer", label="vgg")
    expect(overlay).to_have_attribute("src", f"/media/{prediction.heatmaps['vgg']}")

    # The lung contour, from the keyboard: drawn over the X-ray, in its box, under zoom too.
    expect(page.locator("#cam-lung-fraction")).to_contain_text(
        f"Grad-CAM mass inside the lungs: {round(prediction.cam_lung_fraction * 100)}%"
    )
    contour = page.locator("#lung-contour")
    expect(contour).to_be_hidden()
    page.focus("#contour-toggle")
    page.keyboard.press("Space")
    expect(page.locator("#contour-toggle")).to_be_checked()
    expect(contour).to_be_visible()
    expect(contour).to_have_attribute("data-painted", re.compile(r"^[1-9]\d*$"))
    opaque = page.evaluate(
        """() => {
          const c = document.getElementById("lung-contour");
          const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
          return [n, c.width, c.height];
        }"""
    )
    assert opaque[0] == int(contour.get_attribute("data-painted")) > 0
    assert opaque[0] < opaque[1] * opaque[2] / 2  # a line, not a filled area
    assert _same_box(page, "#lung-contour", "#xray-canvas")
    page.locator("#viewport").hover()  # scrolled into view, the pointer at its centre
    page.mouse.wheel(0, -300)
    expect(page.locator("#stack")).not_to_have_attribute("data-scale", "1.00")
    assert _same_box(page, "#lung-contour", "#xray-canvas")
    page.click("#view-reset")
    page.focus("#contour-toggle")
    page.keyboard.press("Space")
    expect(contour).to_be_hidden()

    corrected = next(c for c in version.classes if c != prediction.label)
    page.check(f"input[name=label][value={corrected}]")
    page.fill("textarea[name=comment]", "Consolidation is not there.")
    page.click(".review-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Review saved")
    history = page.locator(".history li").first
    expect(history).to_contain_text(corrected)
    expect(history).to_contain_text("corrected model")
    expect(history).to_contain_text("Consolidation is not there.")
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
