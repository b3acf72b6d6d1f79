"""The locked evaluation set: chosen once per patient, stored, never trained on."""

import hashlib

from django.db import transaction

from xrayweb.inference.models import PatientAssignment

LOCKED_FRACTION = 0.15


def _locked_by_hash(patient_key: str, fraction: float) -> bool:
    digest = hashlib.sha256(f"xrayweb-locked:{patient_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@transaction.atomic
def patients_assign(*, patient_keys: set[str], fraction: float = LOCKED_FRACTION) -> dict:
    """Assign new patients (by a stable hash) and return every given patient's split."""
    known = dict(
        PatientAssignment.objects.filter(patient_key__in=patient_keys).values_list(
            "patient_key", "split"
        )
    )
    new = [
        PatientAssignment(
            patient_key=key,
            split=PatientAssignment.Split.LOCKED
            if _locked_by_hash(key, fraction)
            else PatientAssignment.Split.TRAIN,
        )
        for key in sorted(patient_keys - set(known))
    ]
    PatientAssignment.objects.bulk_create(new, ignore_conflicts=True)
    return dict(
        PatientAssignment.objects.filter(patient_key__in=patient_keys).values_list(
            "patient_key", "split"
        )
    )
