"""Films out: the de-identified DICOM export, the burned-in-text confirmation it needs, and
the overlay object sent with a result."""

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image
from pydicom import dcmread

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.errors import ApplicationError
from xrayweb.studies.dicom_export import (
    ExportRefused,
    burned_in_value,
    deidentify,
    secondary_capture,
)
from xrayweb.studies.models import Study


def _secret() -> bytes:
    return settings.DEID_SECRET.encode()


def study_export_dicom(*, study: Study) -> bytes:
    """The study's original DICOM, de-identified (PS3.15 Annex E Basic Profile)."""
    if not study.original:
        raise ApplicationError(
            f"Study {study.pk} was uploaded as {study.image_format}, not DICOM; there is no "
            "DICOM original to export.",
            status=404,
        )
    with study.original.open("rb") as f:
        data = f.read()
    try:
        return deidentify(
            data, secret=_secret(), checked_clean=study.burned_in_checked_by_id is not None
        )
    except ExportRefused as exc:
        raise ApplicationError(f"Study {study.pk} cannot be exported: {exc}.", status=409) from exc
    except Exception as exc:  # an element the de-identifier cannot handle: never a 500
        raise ApplicationError(
            f"Study {study.pk} could not be de-identified ({type(exc).__name__}); it was not "
            "exported.",
            status=422,
        ) from exc


@transaction.atomic
def study_confirm_no_burned_in_text(*, study: Study, user, ip: str | None = None) -> Study:
    """A radiologist looked at this film and saw no text burned into its pixels: its
    de-identified export is allowed although the header does not say BurnedInAnnotation
    "NO". Audited with the header's value; a header that says "YES" cannot be overruled."""
    if not study.original:
        raise ApplicationError(f"Study {study.pk} has no DICOM original to export.", status=404)
    with study.original.open("rb") as f:
        header = dcmread(f, stop_before_pixels=True)
    value = burned_in_value(header)
    if value == "YES":
        raise ApplicationError(
            f"Study {study.pk}: the header says text is burned into the pixels "
            "(BurnedInAnnotation YES); the Basic Profile cannot clean it, so it is not exported.",
            status=409,
        )
    study.burned_in_checked_by = user
    study.burned_in_checked_at = timezone.now()
    study.save(update_fields=["burned_in_checked_by", "burned_in_checked_at"])
    audit_record(
        actor=user,
        action=AuditEvent.Action.BURNED_IN_CHECK,
        study=study,
        detail={"burned_in_annotation": value or "absent", "seen": "no burned-in text"},
        ip=ip,
    )
    return study


def study_overlay_dicom(
    *, study: Study, heatmap_path: str, key: str, opacity: float = 0.4
) -> bytes:
    """The X-ray with the heatmap blended in, as a Secondary Capture in the source study."""
    if not study.original:
        raise ApplicationError(f"Study {study.pk} has no DICOM original to refer to.", status=404)
    with study.image.open("rb") as f:
        base = Image.open(f).convert("RGB")
        base.load()
    with default_storage.open(heatmap_path, "rb") as f:
        heat = Image.open(f).convert("RGB").resize(base.size, Image.BILINEAR)
    blended = np.asarray(Image.blend(base, heat, opacity))
    with study.original.open("rb") as f:
        original = f.read()
    try:
        return secondary_capture(
            original,
            blended,
            description="xrayweb Grad-CAM overlay (research use, not diagnostic)",
            key=key,
        )
    except ExportRefused as exc:
        raise ApplicationError(f"Study {study.pk}: {exc}.", status=409) from exc
