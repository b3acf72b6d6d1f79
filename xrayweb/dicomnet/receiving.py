"""Instances that arrive over the network (C-STORE, STOW-RS) become studies through the very
service an upload goes through, byte for byte; this module only adds what a DICOM node needs:
the accession a film may lack, and answers in the protocols' terms."""

import hashlib
import io
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from pydicom import dcmread

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.errors import ApplicationError
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create

logger = logging.getLogger(__name__)

# C-STORE status codes (PS3.4 Table B.2-1) and STOW-RS failure reasons (PS3.18 Table 10.5-1).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
# PS3.7 Annex C general status "Duplicate SOP Instance": another image under a stored UID.
DUPLICATE_SOP_INSTANCE = 0x0111


@dataclass(frozen=True)
class Received:
    """What became of one instance: stored (a new study), a duplicate of a stored one (the
    sender is told it succeeded: a PACS that timed out resends), a conflict (another image
    under a stored SOP Instance UID: refused), or refused, with why."""

    outcome: str  # "stored", "duplicate", "conflict" or "refused"
    status: int
    message: str = ""
    study_id: int | None = None
    sop_class_uid: str = ""
    sop_instance_uid: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("stored", "duplicate")


def service_user():
    """The account that instances received from the network are uploaded by (created on
    first use, with no password: it cannot log in)."""
    from django.conf import settings

    user, created = get_user_model().objects.get_or_create(username=settings.DICOM_SERVICE_USER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def accession_from_study_uid(study_uid: str) -> str:
    """The accession of a film that has none: "XW" and 14 hex digits of the SHA-256 of its
    StudyInstanceUID, so that every image of one study gets the same one (16 characters,
    the DICOM SH limit)."""
    return "XW" + hashlib.sha256(study_uid.encode()).hexdigest()[:14].upper()


def _header(data: bytes) -> dict[str, str]:
    """The few header fields needed before the upload service reads the file; {} when the
    header cannot be read (the upload service then says why)."""
    try:
        ds = dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["AccessionNumber", "StudyInstanceUID", "SOPClassUID", "SOPInstanceUID"],
        )
        meta = getattr(ds, "file_meta", None)
        return {
            "accession": str(ds.get("AccessionNumber", "") or "").strip(),
            "study_uid": str(ds.get("StudyInstanceUID", "") or "").strip(),
            "sop_class": str(
                ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", "") or ""
            ),
            "sop_instance": str(ds.get("SOPInstanceUID", "") or ""),
        }
    except Exception:  # a damaged header: study_create names the problem
        return {}


# What a received instance is called in messages and in the study's original file name.
RECEIVED_NAME = "received.dcm"


def as_part10(data: bytes) -> bytes:
    """A DICOM file with its 128-byte preamble and "DICM" prefix. Some senders (dicomweb-client
    among them) write the file meta group without them; the upload path wants a PS3.10 file."""
    if data[128:132] != b"DICM" and data[:2] == b"\x02\x00":
        return b"\x00" * 128 + b"DICM" + data
    return data


def instance_store(
    *, data: bytes, user, via: str, calling_ae: str = "", ip: str | None = None
) -> Received:
    """Store one received DICOM instance as a study with ``study_create``; never raises.
    ``via`` is "c-store" or "stow-rs"; the audit names it and the calling AE."""
    data = as_part10(data)
    header = _header(data)
    accession = ""
    if not header.get("accession") and header.get("study_uid"):
        accession = accession_from_study_uid(header["study_uid"])
    source = {"via": via, "calling_ae": calling_ae} if calling_ae else {"via": via}
    ids = {
        "sop_class_uid": header.get("sop_class", ""),
        "sop_instance_uid": header.get("sop_instance", ""),
    }
    try:
        study = study_create(
            user=user,
            patient_id="",
            accession=accession,
            data=data,
            filename=RECEIVED_NAME,
            ip=ip,
            source=source,
        )
    except ApplicationError as exc:
        if exc.extra.get("conflict"):
            received = Received(
                "conflict", DUPLICATE_SOP_INSTANCE, str(exc), exc.extra["study"], **ids
            )
        elif exc.status == 409:  # the same SOP instance again (or twice at once): stored once
            existing = exc.extra.get("study") or _stored_as(ids["sop_instance_uid"])
            received = Received("duplicate", SUCCESS, str(exc), existing, **ids)
        else:  # a file that can never be stored: the sender must not retry it
            received = Received("refused", CANNOT_UNDERSTAND, str(exc), **ids)
    except DatabaseError:
        # Transient: the sender is told to try again later, and nothing was stored. The
        # database cannot take an audit event either; the log has the error.
        logger.exception("cannot store a received instance")
        return Received("refused", OUT_OF_RESOURCES, "cannot store it now; resend later", **ids)
    except OSError as exc:  # the media storage (a full disk): transient too
        logger.exception("cannot store a received instance")
        received = Received(
            "refused", OUT_OF_RESOURCES, f"cannot store it now ({type(exc).__name__})", **ids
        )
    else:
        return Received("stored", SUCCESS, "", study.pk, **ids)
    instance_refused_audit(received=received, user=user, source=source, ip=ip)
    return received


def instance_too_large(
    *,
    limit: int,
    user,
    via: str,
    calling_ae: str = "",
    ip: str | None = None,
    aborted: bool = False,
) -> Received:
    """An instance larger than ``limit`` bytes, refused (Out of Resources) and audited
    without being read; ``aborted``: the association was aborted while it arrived."""
    size = f"{limit / 2**20:.0f} MB" if limit >= 2**20 else f"{limit / 1024:.0f} kB"
    reason = f"{RECEIVED_NAME}: the file is larger than {size}."
    if aborted:
        reason += " The association was aborted while it arrived."
    received = Received("refused", OUT_OF_RESOURCES, reason)
    source = {"via": via, "calling_ae": calling_ae} if calling_ae else {"via": via}
    instance_refused_audit(received=received, user=user, source=source, ip=ip)
    return received


def _stored_as(sop_instance_uid: str) -> int | None:
    if not sop_instance_uid:
        return None
    stored = Study.objects.filter(sop_instance_uid=sop_instance_uid)
    return stored.values_list("pk", flat=True).first()


def instance_refused_audit(
    *, received: Received, user, source: dict, ip: str | None = None
) -> None:
    """A ``dicom.instance`` event for an instance not stored: refused, a duplicate, or a
    conflict (the detail's "outcome")."""
    audit_record(
        actor=user,
        action=AuditEvent.Action.DICOM_INSTANCE,
        study=Study(pk=received.study_id) if received.study_id else None,
        detail={
            **source,
            "outcome": received.outcome,
            "sop_instance_uid": received.sop_instance_uid[:64],
            "reason": received.message[:300],
        },
        ip=ip,
    )


def stow_store(*, parts: list, user, ip: str | None = None) -> list[Received]:
    """The instances of one STOW-RS request, in order; a part that is not application/dicom
    is refused (and audited) without being read."""
    outcomes = []
    for part in parts:
        media = part.content_type.split(";")[0].strip().lower()
        if media != "application/dicom":
            refused = Received("refused", CANNOT_UNDERSTAND, f"a {media} part is not DICOM")
            instance_refused_audit(received=refused, user=user, source={"via": "stow-rs"}, ip=ip)
            outcomes.append(refused)
        elif part.too_large:  # its bytes past the limit were never kept
            limit = settings.MAX_UPLOAD_BYTES
            outcomes.append(instance_too_large(limit=limit, user=user, via="stow-rs", ip=ip))
        else:  # one part in memory at a time
            outcomes.append(instance_store(data=part.read(), user=user, via="stow-rs", ip=ip))
        part.close()
    return outcomes
