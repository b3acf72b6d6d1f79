"""Who is acting, for audit rows written where no request is at hand (model signals: a user's
role changed in the admin, a token created by the API). The middleware keeps the current
request in a context variable for the length of the request; management commands and
workers have none, and their rows name no actor."""

from contextvars import ContextVar

_request: ContextVar = ContextVar("xrayweb_audit_request", default=None)


def current_actor_and_ip() -> tuple[object | None, str | None]:
    from xrayweb.audit.addresses import client_ip

    request = _request.get()
    if request is None:
        return None, None
    user = getattr(request, "user", None)
    actor = user if getattr(user, "is_authenticated", False) else None
    return actor, client_ip(request)


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)
