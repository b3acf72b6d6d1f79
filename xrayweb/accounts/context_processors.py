from xrayweb.accounts.roles import CAN_MANAGE_MODELS, CAN_REVIEW, CAN_UPLOAD, user_has_any_role


def roles(request) -> dict:
    user = request.user
    return {
        "can_upload": user_has_any_role(user, CAN_UPLOAD),
        "can_review": user_has_any_role(user, CAN_REVIEW),
        "can_manage_models": user_has_any_role(user, CAN_MANAGE_MODELS),
    }
