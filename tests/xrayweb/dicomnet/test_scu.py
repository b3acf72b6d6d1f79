"""The STOW-RS sender (scu.py) against small local HTTP servers: what counts as stored."""

import http.server
import io
import json
import threading

import pytest
from pydicom import dcmread

from tests.xrayweb.dicomnet import films
from xrayweb.dicomnet.scu import DeliveryError, _without_credentials, stow_send


def serve(status: int, body: dict | None, headers: dict | None = None):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):  # a study search: what a followed redirect would get
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def film() -> tuple[bytes, str]:
    data = films.to_bytes(films.film())
    return data, str(dcmread(io.BytesIO(data)).SOPInstanceUID)


def referenced(uid: str) -> dict:
    return {"00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [uid]}}]}}


def test_a_200_naming_the_instance_is_stored(film):
    data, uid = film
    server = serve(200, referenced(uid))
    stow_send(data=data, url=f"http://127.0.0.1:{server.server_port}/studies", timeout=5)
    server.shutdown()


@pytest.mark.parametrize(
    ("status", "body", "headers", "message"),
    [
        (200, {}, None, "not among those stored"),
        (202, {"00081198": {"vr": "SQ", "Value": [{}]}}, None, "not among those stored"),
        (302, None, {"Location": "/studies?x=1"}, "HTTP 302"),
        (500, {}, None, "HTTP 500"),
    ],
)
def test_what_is_not_stored_is_an_error(film, status, body, headers, message):
    data, _ = film
    server = serve(status, body, headers)
    with pytest.raises(DeliveryError, match=message):
        stow_send(data=data, url=f"http://127.0.0.1:{server.server_port}/studies", timeout=5)
    server.shutdown()


def test_credentials_in_a_url_are_never_shown():
    assert _without_credentials("https://user:secret@pacs:8443/dicom-web/studies") == (
        "https://pacs:8443/dicom-web/studies"
    )
    assert _without_credentials("http://pacs/studies") == "http://pacs/studies"
    with pytest.raises(DeliveryError) as raised:
        stow_send(data=b"x", url="http://user:secret@127.0.0.1:9/studies", timeout=2)
    assert "secret" not in str(raised.value) and "127.0.0.1:9" in str(raised.value)


def test_an_endless_answer_is_not_read_past_the_limit(film):
    """Issue 27: the destination's response was read whole, however large."""
    from xrayweb.dicomnet import scu

    data, uid = film
    huge = {**referenced(uid), "padding": "x" * (scu.STOW_RESPONSE_MAX_BYTES + 10)}
    server = serve(200, huge)
    with pytest.raises(DeliveryError, match="not read further"):
        stow_send(data=data, url=f"http://127.0.0.1:{server.server_port}/studies", timeout=5)
    server.shutdown()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://pacs.example.org/dicom-web/studies", True),
        ("http://127.0.0.1:8042/dicom-web/studies", True),
        ("http://localhost/studies", True),
        ("http://pacs.example.org/dicom-web/studies", False),
        ("http://10.0.0.5/studies", False),
        ("http://127.pacs.example.org/studies", False),  # a name that starts like loopback
        ("http://[::1]:8042/studies", True),
        ("ftp://pacs.example.org/studies", False),
    ],
)
def test_identified_results_go_over_https_or_to_this_machine_only(film, url, allowed):
    """Issue 27: http:// was accepted for results that carry the patient's identity."""
    from django.core.exceptions import ValidationError

    from xrayweb.dicomnet.models import Destination
    from xrayweb.dicomnet.scu import stow_url_check

    destination = Destination(name="d", kind=Destination.Kind.STOW, stow_url=url)
    if allowed:
        stow_url_check(url)
        destination.clean()
    else:
        with pytest.raises(DeliveryError, match="https only"):
            stow_url_check(url)
        with pytest.raises(ValidationError, match="https only"):
            destination.clean()
        with pytest.raises(DeliveryError, match="https only"):
            stow_send(data=film[0], url=url, timeout=5)
