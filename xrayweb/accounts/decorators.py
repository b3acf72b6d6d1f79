from functools import wraps

from django.core.exceptions import PermissionDenied

from xrayweb.accounts.roles import user_has_any_role


def role_required(roles: set[str]):
    """Page views: 403 unless the (logged-in) user holds one of ``roles``."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not user_has_any_role(request.user, roles):
                raise PermissionDenied("Your role does not allow this.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
