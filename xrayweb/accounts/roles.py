"""Roles are Django groups. A superuser counts as an admin."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

STAFF = "staff"
RADIOLOGIST = "radiologist"
ADMIN = "admin"
ROLES = (STAFF, RADIOLOGIST, ADMIN)

# What each action needs. Uploading is for staff (and admins); only radiologists review.
CAN_UPLOAD = {STAFF, ADMIN}
CAN_REVIEW = {RADIOLOGIST}
CAN_MANAGE_MODELS = {ADMIN}
# The agreement dashboard (model vs radiologists) and the predictions export. The audit trail
# (who looked at or changed what) is for admins.
CAN_SEE_AGREEMENT = {RADIOLOGIST, ADMIN}
# Showing the model's output on a study that is not assessable (the agreement needs it).
CAN_REVEAL = {RADIOLOGIST, ADMIN}
CAN_READ_AUDIT_LOG = {ADMIN}
# DICOM out of the system: the de-identified original, and the identified overlay for a PACS.
CAN_EXPORT_DICOM = {RADIOLOGIST, ADMIN}
# Every site's studies. Staff read only their site's (or their own uploads, with no site).
CAN_READ_ALL_SITES = {RADIOLOGIST, ADMIN}


def user_roles(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_xrayweb_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMIN)
        user._xrayweb_roles = cached
    return cached


def user_has_any_role(user, roles: set[str]) -> bool:
    return bool(user_roles(user) & roles)
