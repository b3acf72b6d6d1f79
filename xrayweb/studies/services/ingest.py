"""Films in: an upload or a DICOM object checked, decoded and stored as a study (filed under
the uploader's site), a batch of uploads, and the worklist thumbnails."""

import hashlib
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, transaction

from xrayweb.accounts.selectors import user_site
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.errors import ApplicationError
from xrayweb.studies.dicom import dicom_decode, looks_like_dicom
from xrayweb.studies.images import (
    filename_check,
    image_validate,
    thumbnail_png,
    upload_size_check,
)
from xrayweb.studies.models import Study
from xrayweb.studies.signals import study_uploaded


def _clean_identifier(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ApplicationError(f"{field} is required.")
    if len(value) > 64 or not value.isprintable():
        raise ApplicationError(f"{field} must be at most 64 printable characters.")
    return value


def _clean_optional(value: str, field: str, limit: int) -> str:
    value = (value or "").strip()
    if len(value) > limit or not value.isprintable():
        raise ApplicationError(f"{field} must be at most {limit} printable characters.")
    return value


def _same_image(existing: Study, data: bytes, png: bytes) -> bool:
    """The same instance again: the same file, or the same pixels in another encoding (a
    resend in another transfer syntax)."""
    if existing.image_sha256 == hashlib.sha256(data).hexdigest():
        return True
    try:
        with existing.image.open("rb") as f:
            return f.read() == png
    except OSError:
        return False  # the stored image is gone: nothing shows the two are the same


def _study_from_dicom(data: bytes, filename: str, patient_id: str, accession: str) -> dict:
    """Study fields from a DICOM file; the header fills identifiers the uploader left empty."""
    decoded = dicom_decode(data=data, filename=filename)
    fields = dict(decoded.fields)
    sop = fields.pop("sop_instance_uid")
    if sop:
        existing = Study.objects.filter(sop_instance_uid=sop).first()
        if existing is not None and not _same_image(existing, data, decoded.png):
            # A device that reuses a UID (a known bug class): never drop the new image
            # silently, and never let it stand for the stored one.
            raise ApplicationError(
                f"{filename or 'the file'}: a different image carries the SOPInstanceUID "
                f"{sop} of study #{existing.pk}; it was not stored. The sending device may be "
                "reusing UIDs: check it.",
                status=409,
                extra={"study": existing.pk, "conflict": True},
            )
        if existing is not None:
            raise ApplicationError(
                f"{filename or 'the file'}: this image (SOPInstanceUID {sop}) was already "
                f"uploaded as study #{existing.pk}; nothing was added.",
                status=409,
                extra={"study": existing.pk},
            )
    header_patient, header_accession = fields.pop("patient_id"), fields.pop("accession")
    warning = "; ".join(decoded.scope_warnings)
    if warning:
        warning = (
            f"Out of scope: {warning}. The model was trained on frontal chest X-rays: this "
            "study will be marked not assessable, with no diagnosis."
        )
    return {
        "patient_id": patient_id or header_patient,
        "accession": accession or header_accession,
        "sop_instance_uid": sop,
        "image_data": decoded.png,
        "image_format": "PNG",
        "image_width": decoded.width,
        "image_height": decoded.height,
        "display_data": decoded.display_png,
        "window_level": decoded.display_window[0],
        "window_width": decoded.display_window[1],
        "out_of_scope": bool(decoded.scope_warnings),
        "scope_warning": warning,
        **fields,
    }


def _site_for(*, user, site: str) -> str:
    """The site a study is filed under: the uploader's own (staff see only their site's
    studies, so an upload filed elsewhere would vanish from their view), or the one given
    when the uploader has none."""
    own = user_site(user=user) if user is not None else ""
    if own and site and site != own:
        raise ApplicationError(
            f"You upload for site {own!r}; a study for {site!r} must come from that site.",
            status=403,
        )
    return own or site


def study_create(
    *,
    user: AbstractBaseUser,
    patient_id: str,
    accession: str,
    data: bytes,
    filename: str = "",
    site: str = "",
    view: str = "",
    ip: str | None = None,
    source: dict | None = None,
) -> Study:
    """Validate and store one image (PNG, JPEG or DICOM) as a queued study; on commit it is
    announced (``study_uploaded``), and inference enqueues it. Nothing is written unless the
    file is valid, and the row and files are written together. A DICOM image already uploaded
    (same SOPInstanceUID) is refused (409) with the existing study's id. ``source`` says how
    it arrived when not through the upload form or API (the DICOM node: ``{"via":
    "c-store", "calling_ae": ...}``); it goes into the audit event."""
    name = filename or "the file"
    filename_check(filename)
    upload_size_check(data=data, name=name)
    site = _site_for(user=user, site=_clean_optional(site, "Site", 64))
    view = _clean_optional(view, "View", 32)
    original = None
    if looks_like_dicom(data, filename):
        fields = _study_from_dicom(data, filename, (patient_id or "").strip(), accession)
        original, display = data, fields.pop("display_data")
        fields["view"] = view or fields["view"]
    else:
        image = image_validate(data=data, filename=filename)
        fields = {
            "patient_id": patient_id,
            "accession": accession,
            "image_data": image.data,
            "image_format": image.format,
            "image_width": image.width,
            "image_height": image.height,
            "view": view,
        }
        display = None
    fields["patient_id"] = _clean_identifier(fields["patient_id"], "Patient ID")
    fields["accession"] = _clean_identifier(fields["accession"], "Accession number")
    image_data = fields.pop("image_data")
    with transaction.atomic():
        study = Study(
            image_sha256=hashlib.sha256(data).hexdigest(),
            original_filename=filename[:255],
            uploaded_by=user,
            site=site,
            **fields,
        )
        saved = [study.image, study.thumbnail]
        study.image.save("upload", ContentFile(image_data), save=False)
        study.thumbnail.save("thumb.png", ContentFile(thumbnail_png(image_data)), save=False)
        try:
            if original is not None:
                study.original.save("upload.dcm", ContentFile(original), save=False)
                saved.append(study.original)
                study.display_image.save("display.png", ContentFile(display), save=False)
                saved.append(study.display_image)
            study.save()
        except IntegrityError as exc:
            for file in saved:
                file.delete(save=False)
            raise ApplicationError(
                f"{name}: this image was already uploaded; nothing was added.", status=409
            ) from exc
        except Exception:
            for file in saved:
                file.delete(save=False)
            raise
        audit_record(
            actor=user, action=AuditEvent.Action.STUDY_UPLOAD, study=study, ip=ip, detail=source
        )
        transaction.on_commit(lambda: study_uploaded.send(sender=Study, study_id=study.pk))
    return study


@dataclass(frozen=True)
class Uploaded:
    """One file of a batch: the study it became, or why it was refused."""

    name: str
    study: Study | None = None
    error: ApplicationError | None = None


def studies_upload_batch(
    *,
    user: AbstractBaseUser,
    files: list[File],
    patient_id: str,
    accession: str,
    site: str = "",
    view: str = "",
    ip: str | None = None,
) -> list[Uploaded]:
    """Each file becomes a study of its own (``study_create``), with the identifiers and
    site and view the form gave for all; a refused file does not stop the others. The
    outcomes come back in the files' order. No file at all is refused (400)."""
    if not files:
        raise ApplicationError("Choose at least one PNG, JPEG or DICOM file.")
    outcomes = []
    for file in files:
        try:
            # The size the upload handler counted: an oversized file is refused before it is
            # read into memory.
            upload_size_check(name=file.name or "the file", size=file.size)
            study = study_create(
                user=user,
                patient_id=patient_id,
                accession=accession,
                data=file.read(),
                filename=file.name,
                site=site,
                view=view,
                ip=ip,
            )
        except ApplicationError as exc:
            outcomes.append(Uploaded(name=file.name, error=exc))
        else:
            outcomes.append(Uploaded(name=file.name, study=study))
    return outcomes


def thumbnails_backfill(*, batch: int = 200) -> int:
    """Make the worklist thumbnail of every study that has none (studies stored before
    thumbnails existed). Returns how many were made."""
    made = 0
    for study in Study.objects.filter(thumbnail="").iterator(chunk_size=batch):
        with study.image.open("rb") as f:
            data = f.read()
        study.thumbnail.save("thumb.png", ContentFile(thumbnail_png(data)), save=False)
        Study.objects.filter(pk=study.pk).update(thumbnail=study.thumbnail.name)
        made += 1
    return made
