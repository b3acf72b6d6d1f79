"""Swagger UI at /api/docs/ runs under the Content-Security-Policy (no inline code, no CDN)
and shows the API's operations."""

import os

import pytest
from playwright.sync_api import expect

from xrayweb.accounts.services import user_create_with_role

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def test_swagger_ui_renders_the_schema_under_the_csp(page, login, live_server):
    user_create_with_role(username="stf", password="pw-Test-12345", role="staff")
    violations = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    login("stf")
    page.wait_for_load_state("networkidle")  # the landing page's own requests are done
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .opblock-summary-path").first).to_be_visible(timeout=20_000)
    expect(page.locator(".swagger-ui")).to_contain_text("/api/studies/")
    assert violations == [] and failed == []
