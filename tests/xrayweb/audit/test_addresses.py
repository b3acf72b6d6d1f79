"""The client address the audit records: X-Forwarded-For is believed only from trusted
proxies, and only as far as the chain of trusted proxies goes."""

import pytest
from django.test import RequestFactory

from xrayweb.audit.addresses import client_ip
from xrayweb.audit.models import AuditEvent


def request(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        ([], "203.0.113.7", None, "203.0.113.7"),
        ([], "203.0.113.7", "10.9.9.9", "203.0.113.7"),  # no trusted proxy: spoof ignored
        (["172.18.0.0/16"], "203.0.113.7", "10.9.9.9", "203.0.113.7"),  # not from the proxy
        (["172.18.0.0/16"], "172.18.0.5", "198.51.100.2", "198.51.100.2"),
        # The client prepends a lie; the proxy appends the address it saw: that one wins.
        (["172.18.0.0/16"], "172.18.0.5", "10.9.9.9, 198.51.100.2", "198.51.100.2"),
        # Two trusted hops (a load balancer, then nginx).
        (["172.18.0.5", "192.0.2.0/24"], "172.18.0.5", "198.51.100.2, 192.0.2.10", "198.51.100.2"),
        (["172.18.0.0/16"], "172.18.0.5", "not-an-address", "172.18.0.5"),
        (["172.18.0.0/16"], "172.18.0.5", "", "172.18.0.5"),
        (["::1"], "::1", "2001:db8::7", "2001:db8::7"),
        ([], "", None, None),
    ],
)
def test_client_ip_trusts_forwarded_for_only_from_trusted_proxies(
    settings, proxies, remote, forwarded, expected
):
    settings.TRUSTED_PROXIES = proxies
    assert client_ip(request(remote, forwarded)) == expected


def test_audited_page_views_record_the_client_behind_the_proxy(
    settings, client, predicted, radiologist
):
    study = predicted({"normal": 0.9})
    client.force_login(radiologist)
    url = f"/studies/{study.pk}/"
    settings.TRUSTED_PROXIES = []
    client.get(url, REMOTE_ADDR="172.18.0.5", HTTP_X_FORWARDED_FOR="10.6.6.6")
    settings.TRUSTED_PROXIES = ["172.18.0.0/16"]
    client.get(url, REMOTE_ADDR="172.18.0.5", HTTP_X_FORWARDED_FOR="10.6.6.6, 198.51.100.2")
    views = AuditEvent.objects.filter(action=AuditEvent.Action.STUDY_VIEW).order_by("seq")
    assert [e.ip for e in views] == ["172.18.0.5", "198.51.100.2"]
