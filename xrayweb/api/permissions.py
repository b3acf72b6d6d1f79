from rest_framework.permissions import BasePermission

from xrayweb.accounts.roles import CAN_EXPORT_DICOM, CAN_REVIEW, CAN_UPLOAD, user_has_any_role


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
