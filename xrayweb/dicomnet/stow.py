"""STOW-RS (PS3.18 §10.5): the multipart/related request body split into its DICOM parts,
and the response dataset in the DICOM JSON model."""

import re
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import IO

from django.conf import settings
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError

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


# A part is kept in memory up to this size, then spooled to a temporary file.
SPOOL_BYTES = 1024 * 1024
# Bytes read from the request per step.
CHUNK_BYTES = 64 * 1024


@dataclass
class Part:
    """One body part, spooled to disk as it arrived. ``too_large``: it passed
    MAX_UPLOAD_BYTES, and the rest of it was dropped unread."""

    content_type: str
    # Closed by whoever reads the part (it outlives this parser), hence no ``with``.
    file: IO[bytes] = field(default_factory=lambda: SpooledTemporaryFile(SPOOL_BYTES))  # noqa: SIM115
    size: int = 0
    too_large: bool = False

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def _parameters(content_type: str) -> tuple[str, dict[str, str]]:
    media, *params = content_type.split(";")
    found = {}
    for param in params:
        key, _, value = param.strip().partition("=")
        found[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), found


def _boundary(content_type: str) -> str:
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
    return boundary


class _Collector:
    """python-multipart's callbacks: each part's headers, and its bytes written to its spool
    file as they stream in, within the part count and the per-part size."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.current: Part | None = None
        self.ended = False
        self._field = b""
        self._value = b""
        self._headers: dict[str, str] = {}

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: self._add("_field", data[start:end]),
            "on_header_value": lambda data, start, end: self._add("_value", data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def part_begin(self) -> None:
        limit = settings.DICOMWEB_MAX_PARTS
        if len(self.parts) == limit:
            # Each refused part writes an audit row: an unlimited count would let one request
            # flood the audit chain.
            raise ApplicationError(
                f"At most {limit} instances per STOW-RS request; send the rest in another.",
                status=413,
            )
        self._headers = {}

    def header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self._headers[name] = self._value.decode("latin-1").strip()
        self._field = self._value = b""

    def headers_finished(self) -> None:
        self.current = Part(self._headers.get("content-type", DICOM_MEDIA_TYPE))
        self.parts.append(self.current)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        part.size += end - start
        if part.size > settings.MAX_UPLOAD_BYTES:
            if not part.too_large:  # what came so far is dropped too
                part.too_large = True
                part.file.close()
                part.file = SpooledTemporaryFile(0)  # noqa: SIM115 (closed as above)
            return
        part.file.write(data[start:end])

    def part_end(self) -> None:
        self.current = None

    def end(self) -> None:
        self.ended = True


def parts_read(*, stream, content_type: str, limit: int) -> list[Part]:
    """The body parts of a ``multipart/related; type="application/dicom"`` body, read from
    ``stream`` in chunks by python-multipart (a streaming parser of RFC 2046 bodies: the
    parts are binary, and no line parser may guess at line endings inside pixel data). At
    most ``limit`` bytes are read; each part is spooled to disk past 1 MB, and never held
    whole in memory beyond MAX_UPLOAD_BYTES (issue 27: the body was read whole, then split,
    then copied again)."""
    collector = _Collector()
    parser = MultipartParser(_boundary(content_type), collector.callbacks())
    read = 0
    try:
        while True:
            chunk = stream.read(CHUNK_BYTES) if stream is not None else b""
            if not chunk:
                break
            read += len(chunk)
            if read > limit:
                raise ApplicationError(f"The request is larger than {limit} bytes.", status=413)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        _close(collector.parts)
        raise ApplicationError(f"The multipart/related body cannot be read: {exc}") from exc
    except ApplicationError:
        _close(collector.parts)
        raise
    if not collector.ended:
        _close(collector.parts)
        raise ApplicationError("The multipart/related body has no close delimiter.")
    if not collector.parts:
        raise ApplicationError("The request has no DICOM instances.")
    return collector.parts


def _close(parts: list[Part]) -> None:
    for part in parts:
        part.close()


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
