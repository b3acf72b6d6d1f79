"""STOW-RS (PS3.18 §10.5): the multipart/related request body split into its DICOM parts,
and the response dataset in the DICOM JSON model."""

import re
from dataclasses import dataclass

from django.conf import settings

from xrayweb.dicomnet.receiving import PROCESSING_FAILURE, Received
from xrayweb.errors import ApplicationError

DICOM_MEDIA_TYPE = "application/dicom"
# PS3.18 Table 10.5.3-1: the response's attributes.
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS = "00081150"
REFERENCED_SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
# Warning reason "coercion of data elements": a duplicate is answered as stored, once.
DUPLICATE_WARNING = 0xB000
# RFC 2046 §5.1.1: 1 to 70 characters of this set, not ending in a space.
BOUNDARY_RE = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")


@dataclass(frozen=True)
class Part:
    content_type: str
    data: bytes


def _parameters(content_type: str) -> tuple[str, dict[str, str]]:
    media, *params = content_type.split(";")
    found = {}
    for param in params:
        key, _, value = param.strip().partition("=")
        found[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), found


def parts_split(*, body: bytes, content_type: str) -> list[Part]:
    """The body parts of a ``multipart/related; type="application/dicom"`` body. The parts
    are binary, so the body is split on its boundary delimiters as RFC 2046 §5.1.1 defines
    them (a line parser would have to guess at line endings inside pixel data)."""
    media, params = _parameters(content_type)
    if media != "multipart/related":
        raise ApplicationError(
            'STOW-RS takes multipart/related; type="application/dicom" bodies.', status=415
        )
    if params.get("type", DICOM_MEDIA_TYPE).lower() != DICOM_MEDIA_TYPE:
        raise ApplicationError(
            f"Only application/dicom parts are stored here, not {params['type']}.", status=415
        )
    boundary = params.get("boundary", "")
    if not BOUNDARY_RE.match(boundary):
        raise ApplicationError("The multipart/related body has no valid boundary.")
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(b"\r\n" + delimiter)
    first = pieces[0]
    if not first.startswith(delimiter):  # the preamble, if any, ends in CRLF + delimiter
        pieces = pieces[1:]
    else:
        pieces[0] = first[len(delimiter) :]
    parts = []
    limit = settings.DICOMWEB_MAX_PARTS
    for piece in pieces:
        if piece.startswith(b"--"):  # the close delimiter
            break
        if len(parts) == limit:
            # Each refused part writes an audit row: an unlimited count would let one request
            # flood the audit chain.
            raise ApplicationError(
                f"At most {limit} instances per STOW-RS request; send the rest in another.",
                status=413,
            )
        head, sep, data = piece.partition(b"\r\n\r\n")
        if not sep:
            raise ApplicationError("A body part has no header/body separator (CRLF CRLF).")
        headers = {}
        for line in head.split(b"\r\n")[1:]:  # [0]: the rest of the delimiter line
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers.get("content-type", DICOM_MEDIA_TYPE), data))
    else:
        raise ApplicationError("The multipart/related body has no close delimiter.")
    if not parts:
        raise ApplicationError("The request has no DICOM instances.")
    return parts


def _item(received: Received) -> dict:
    return {
        REFERENCED_SOP_CLASS: {"vr": "UI", "Value": [received.sop_class_uid]}
        if received.sop_class_uid
        else {"vr": "UI"},
        REFERENCED_SOP_INSTANCE: {"vr": "UI", "Value": [received.sop_instance_uid]}
        if received.sop_instance_uid
        else {"vr": "UI"},
    }


def stow_response(*, outcomes: list[Received], study_url) -> tuple[int, dict]:
    """(HTTP status, response dataset): 200 when every instance was stored, 202 when some
    were, 409 when none were. ``study_url(study_id)`` gives an instance's RetrieveURL (the
    study's page)."""
    referenced, failed = [], []
    for received in outcomes:
        item = _item(received)
        if received.ok:
            if received.study_id:
                item[RETRIEVE_URL] = {"vr": "UR", "Value": [study_url(received.study_id)]}
            if received.outcome == "duplicate":
                item[WARNING_REASON] = {"vr": "US", "Value": [DUPLICATE_WARNING]}
            referenced.append(item)
        else:
            item[FAILURE_REASON] = {"vr": "US", "Value": [received.status or PROCESSING_FAILURE]}
            failed.append(item)
    dataset = {}
    if referenced:
        dataset[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": referenced}
    if failed:
        dataset[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else 202 if referenced else 409
    return status, dataset
