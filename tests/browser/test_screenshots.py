"""The README's screenshots, taken in Chromium at 1280 × 800 by this test on every run: the
worklist, the review page (heatmap and lung contour on) and the agreement dashboard, with
real sample X-rays predicted by the shipped model. They land in static/screenshots/; commit
them when the pages change."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from classifier import DEFAULT_BUNDLE
from tests.conftest import SAMPLE_DIR
from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference import runtime
from xrayweb.inference.services.registry import model_version_register
from xrayweb.review.services import review_submit
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SHOTS = Path(__file__).resolve().parents[2] / "static" / "screenshots"


def _films() -> list[Path]:
    images = sorted((SAMPLE_DIR / "images").glob("*.jpg"))
    return [images[i * len(images) // 6] for i in range(6)]


def test_the_readme_screenshots(page, login, live_server, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    model_version_register(bundle_path=DEFAULT_BUNDLE, activate=True)
    staff = user_create_with_role(username="staff", password="pw-Test-12345", role="staff")
    reader = user_create_with_role(username="dr-ada", password="pw-Test-12345", role="radiologist")
    sites = ["north", "children", "north", "south", "children", "south"]
    for i, (path, site) in enumerate(zip(_films(), sites, strict=True)):
        study_create(
            user=staff,
            patient_id=f"P-{1040 + i}",
            accession=f"ACC-{7310 + i}",
            data=path.read_bytes(),
            filename=path.name,
            site=site,
            view="PA",
        )
    first = Study.objects.order_by("pk").first()
    runtime.prediction_batch_run(study_id=first.pk, max_studies=6)
    studies = list(Study.objects.order_by("pk"))
    for study in studies[:3]:  # three read, one of them corrected
        label = study.current_prediction.label
        if study == studies[1]:
            label = next(c for c in study.current_prediction.probabilities if c != label)
        review_submit(study=study, reviewer=reader, label=label)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    login("dr-ada")

    page.goto(f"{live_server.url}/worklist/")
    expect(page.locator("tr[data-study-id]")).to_have_count(6)
    page.screenshot(path=str(SHOTS / "worklist.png"))

    unread = studies[4]
    page.goto(f"{live_server.url}/studies/{unread.pk}/")
    expect(page.locator("#xray-canvas")).to_have_attribute("data-ready", "1", timeout=15_000)
    contour = page.locator("#contour-toggle")
    if contour.count():
        contour.check()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "review.png"))

    page.goto(f"{live_server.url}/agreement/")
    expect(page.locator("#agreement-n")).to_have_text("3")
    page.screenshot(path=str(SHOTS / "agreement.png"), full_page=True)
    for name in ("worklist", "review", "agreement"):
        assert (SHOTS / f"{name}.png").stat().st_size > 20_000, name
