from xrayweb.accounts.roles import (
    CAN_MANAGE_MODELS,
    CAN_READ_AUDIT_LOG,
    CAN_REVIEW,
    CAN_SEE_AGREEMENT,
    CAN_UPLOAD,
    user_has_any_role,
)


def roles(request) -> dict:
    user = request.user
    return {
        "can_upload": user_has_any_role(user, CAN_UPLOAD),
        "can_review": user_has_any_role(user, CAN_REVIEW),
        "can_manage_models": user_has_any_role(user, CAN_MANAGE_MODELS),
        "can_see_agreement": user_has_any_role(user, CAN_SEE_AGREEMENT),
        "can_read_audit_log": user_has_any_role(user, CAN_READ_AUDIT_LOG),
    }
