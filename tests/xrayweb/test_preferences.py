"""The per-user shortcut setting: remembered, shown on the review page, and never a way to
send a user to another site."""

import pytest

from xrayweb.accounts.models import Preferences
from xrayweb.accounts.selectors import shortcuts_enabled

pytestmark = pytest.mark.django_db


def test_turning_shortcuts_off_is_remembered_and_returns_to_the_page(client, make_user):
    reader = make_user("radiologist")
    assert shortcuts_enabled(user=reader) is True  # on until turned off
    client.force_login(reader)
    response = client.post("/accounts/shortcuts/", {"shortcuts": "off", "next": "/worklist/"})
    assert response.status_code == 302 and response["Location"] == "/worklist/"
    assert Preferences.objects.get(user=reader).shortcuts is False
    assert shortcuts_enabled(user=reader) is False
    client.post("/accounts/shortcuts/", {"shortcuts": "on", "next": "/worklist/"})
    assert shortcuts_enabled(user=reader) is True


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", ""])
def test_the_return_address_must_be_this_site(client, make_user, target):
    client.force_login(make_user("staff"))
    response = client.post("/accounts/shortcuts/", {"shortcuts": "off", "next": target})
    assert response.status_code == 302 and response["Location"] == "/"
