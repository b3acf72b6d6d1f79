from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction

from xrayweb.errors import ApplicationError
from xrayweb.studies.images import image_validate
from xrayweb.studies.models import Study


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
) -> Study:
    """Validate and store one image as a queued study; inference is enqueued on commit.

    Nothing is written unless the image is valid, and the row and file are written together.
    """
    from xrayweb.inference.tasks import predict_study  # tasks import services: avoid a cycle
    from xrayweb.review.models import AuditEvent  # review builds on studies
    from xrayweb.review.services import audit_record

    patient_id = _clean_identifier(patient_id, "Patient ID")
    accession = _clean_identifier(accession, "Accession number")
    site = _clean_optional(site, "Site", 64)
    view = _clean_optional(view, "View", 32)
    image = image_validate(data=data, filename=filename)
    with transaction.atomic():
        study = Study(
            patient_id=patient_id,
            accession=accession,
            image_format=image.format,
            image_width=image.width,
            image_height=image.height,
            image_sha256=image.sha256,
            original_filename=filename[:255],
            uploaded_by=user,
            site=site,
            view=view,
        )
        study.image.save("upload", ContentFile(image.data), save=False)
        try:
            study.save()
        except Exception:
            study.image.delete(save=False)
            raise
        audit_record(actor=user, action=AuditEvent.Action.STUDY_UPLOAD, study=study, ip=ip)
        transaction.on_commit(lambda: predict_study.delay(study.pk))
    return study
