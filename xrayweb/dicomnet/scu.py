"""The service-class-user side: sending one DICOM object to a destination by C-STORE
(pynetdicom) or STOW-RS (HTTP), no database involved (sending.py is one delivery attempt,
with its bookkeeping). Every way it can fail is a ``DeliveryError`` naming the peer and what
it said."""

import io
import ipaddress
import json
import uuid
from urllib.parse import urlsplit, urlunsplit

import requests
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

# C-STORE warnings (PS3.4 B.2-1): coercion of data elements, elements discarded, data set does
# not match the SOP class. The object is stored.
CSTORE_WARNINGS = {0xB000, 0xB006, 0xB007}


# A STOW-RS answer names the instances stored: a few kilobytes. A peer that sends more is
# not read further (a hostile or broken server cannot fill the worker's memory).
STOW_RESPONSE_MAX_BYTES = 1024 * 1024


class DeliveryError(Exception):
    """The peer could not be reached or did not store the object."""


def stow_url_check(url: str) -> None:
    """Results carry the patient's identity: they go over https, or over http only to this
    machine (a test PACS on loopback), never in the clear across a network."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address ("127.pacs.example.org" is not loopback)
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise DeliveryError(
            f"{_without_credentials(url)}: results are sent over https only (http is allowed "
            "to this machine alone)"
        )


def cstore_send(
    *, data: bytes, ae_title: str, host: str, port: int, calling_ae: str, timeout: int
) -> None:
    ds = dcmread(io.BytesIO(data))
    ae = AE(ae_title=calling_ae)
    for name in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
        setattr(ae, name, timeout)
    syntaxes = list(dict.fromkeys([ds.file_meta.TransferSyntaxUID, ExplicitVRLittleEndian]))
    ae.add_requested_context(ds.SOPClassUID, [*syntaxes, ImplicitVRLittleEndian])
    peer = f"{ae_title}@{host}:{port}"
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        why = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "no answer"
        raise DeliveryError(f"{peer}: association failed ({why})")
    try:
        if not any(c.abstract_syntax == ds.SOPClassUID for c in assoc.accepted_contexts):
            raise DeliveryError(f"{peer} does not accept {ds.SOPClassUID.name} objects")
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    if "Status" not in status:
        raise DeliveryError(f"{peer}: no C-STORE response (timeout or abort)")
    code = int(status.Status)
    if code != 0x0000 and code not in CSTORE_WARNINGS:
        comment = status.get("ErrorComment", "")
        raise DeliveryError(f"{peer}: C-STORE status 0x{code:04X} {comment}".strip())


def stow_send(*, data: bytes, url: str, timeout: int) -> None:
    """One instance to ``url`` (the STOW-RS studies resource, e.g. …/dicom-web/studies), with
    a Content-Length: some servers cannot read a chunked body."""
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    stow_url_check(url)
    shown = _without_credentials(url)
    try:
        # No redirects: requests would follow one as a GET without the body, which a
        # DICOMweb server answers as a study search, 200.
        with requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        ) as response:
            answer = response.raw.read(STOW_RESPONSE_MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        why = str(exc).replace(url, shown)[:300]
        raise DeliveryError(f"{shown}: {type(exc).__name__}: {why}") from exc
    if len(answer) > STOW_RESPONSE_MAX_BYTES:
        raise DeliveryError(
            f"{shown}: HTTP {response.status_code} with an answer over "
            f"{STOW_RESPONSE_MAX_BYTES // 1024} KB; not read further"
        )
    if response.status_code not in (200, 202):
        text = answer[:300].decode("utf-8", "replace")
        raise DeliveryError(f"{shown}: HTTP {response.status_code} {text}".strip())
    # Stored only if the response names it among the referenced instances.
    uid = str(dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
    referenced = _json(answer).get("00081199", {}).get("Value", [])
    uids = {v for item in referenced for v in item.get("00081155", {}).get("Value", [])}
    if uid not in uids:
        raise DeliveryError(
            f"{shown}: HTTP {response.status_code} but the instance is not among those stored"
        )


def _without_credentials(url: str) -> str:
    """The URL as it may be shown and logged: no user or password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(
        parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    )


def _json(answer: bytes) -> dict:
    try:
        body = json.loads(answer)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
