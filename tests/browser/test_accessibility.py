"""Every page a person uses, checked in Chromium at 1280 × 800: axe-core (injected by
Playwright, under the unchanged CSP) finds no critical or serious violation, and no table is
cut off by its card (a wide table scrolls inside it)."""

import os
import re
from pathlib import Path

import pytest

from tests.xrayweb.dicomnet import films
from xrayweb.accounts.services import user_create_with_role
from xrayweb.inference import runtime
from xrayweb.inference.services.registry import model_version_register
from xrayweb.review.services import review_submit
from xrayweb.studies.services.ingest import study_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = {"critical", "serious"}
# What a template or script leaks when a value is missing.
RAW_WORDS = ("None", "NaN", "undefined", "null")
# A table is cut off when its right edge passes its card's and nothing between them scrolls.
CUT_OFF_TABLES = """() => {
  const cut = [];
  for (const table of document.querySelectorAll('table')) {
    const card = table.closest('.card, main') || document.body;
    let scrolls = false;
    for (let node = table.parentElement; node && node !== card.parentElement;
         node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowX;
      if (overflow === 'auto' || overflow === 'scroll') { scrolls = true; break; }
    }
    if (scrolls) continue;
    const t = table.getBoundingClientRect(), c = card.getBoundingClientRect();
    if (t.right > c.right + 1 || t.left < c.left - 1) {
      const name = table.id || table.className || 'table';
      cut.push(`${name} ${Math.round(t.width)}px in ${Math.round(c.width)}px`);
    }
  }
  return cut;
}"""


def axe_violations(page) -> list[str]:
    """axe-core's critical and serious violations on the page, one line each. The script is
    evaluated through the DevTools protocol, which the page's CSP does not govern; the CSP
    itself is unchanged."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} missing: `make test` installs axe-core (npm ci in tests/browser)")
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']} ({v['help']}): "
        + "; ".join(n["target"][0] for n in v["nodes"][:5])
        for v in result["violations"]
        if v["impact"] in SERIOUS
    ]


@pytest.fixture
def pages(live_server, tiny_bundle, settings, tmp_path):
    """Every page, with data on it: a predicted DICOM study read once."""
    settings.MEDIA_ROOT = tmp_path / "media"
    model_version_register(bundle_path=tiny_bundle, activate=True)
    staff = user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    user_create_with_role(username="rad", password="pw-Test-12345", role="radiologist")
    admin = user_create_with_role(username="adm", password="pw-Test-12345", role="admin")
    data = films.to_bytes(films.film(width=96))
    study = study_create(user=staff, patient_id="", accession="", data=data)
    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)
    study.refresh_from_db()
    review_submit(study=study, reviewer=admin, label=study.current_prediction.label)
    return {
        "login": (None, "/accounts/login/"),
        "upload": ("stf", "/upload/"),
        "worklist": ("rad", "/worklist/"),
        "study": ("rad", f"/studies/{study.pk}/"),
        "agreement": ("rad", "/agreement/"),
        "audit log": ("adm", "/audit/log/"),
        "api docs": ("stf", "/api/docs/"),
    }


@pytest.mark.parametrize(
    "name", ["login", "upload", "worklist", "study", "agreement", "audit log", "api docs"]
)
def test_no_serious_accessibility_violation_and_no_table_cut_off(
    page, login, live_server, pages, name
):
    page.set_viewport_size({"width": 1280, "height": 800})
    user, path = pages[name]
    if user:
        login(user)
    page.goto(f"{live_server.url}{path}")
    page.wait_for_load_state("networkidle")
    if name == "api docs":
        page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=20_000)
    problems = axe_violations(page) + [f"cut off: {t}" for t in page.evaluate(CUT_OFF_TABLES)]
    if name != "api docs":  # Swagger UI's own text (schema examples) may say "null"
        text = page.locator("main").inner_text()
        problems += [f"raw {word!r} shown" for word in RAW_WORDS if re.search(rf"\b{word}\b", text)]
    assert problems == [], "\n".join(problems)
