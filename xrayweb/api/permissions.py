from rest_framework.permissions import BasePermission

from xrayweb.accounts.roles import (
    CAN_EXPORT_DICOM,
    CAN_MANAGE_MODELS,
    CAN_REVIEW,
    CAN_SEE_AGREEMENT,
    CAN_UPLOAD,
    user_has_any_role,
)


class CanUpload(BasePermission):
    message = "Only staff users may upload studies."

    def has_permission(self, request, view) -> bool:
        return request.method != "POST" or user_has_any_role(request.user, CAN_UPLOAD)


class CanExportDicom(BasePermission):
    message = "Only radiologists and admins may export DICOM."

    def has_permission(self, request, view) -> bool:
        return user_has_any_role(request.user, CAN_EXPORT_DICOM)


class CanReview(BasePermission):
    message = "Only radiologists may review studies."

    def has_permission(self, request, view) -> bool:
        return user_has_any_role(request.user, CAN_REVIEW)


class CanManageModels(BasePermission):
    message = "Only admins may list and activate model versions."

    def has_permission(self, request, view) -> bool:
        return user_has_any_role(request.user, CAN_MANAGE_MODELS)


class CanExportPredictions(BasePermission):
    message = "Only radiologists and admins may export the predictions and their readings."

    def has_permission(self, request, view) -> bool:
        return user_has_any_role(request.user, CAN_SEE_AGREEMENT)


class CanReviewOrRead(CanReview):
    """Anyone logged in reads the (visible) readings; only radiologists add one."""

    def has_permission(self, request, view) -> bool:
        return request.method in ("GET", "HEAD", "OPTIONS") or super().has_permission(request, view)
