"""django-axes' database handler, with password spraying covered (issue 27). Axes locks a
(username, address) pair after AXES_FAILURE_LIMIT failures; one address that tries a few
passwords on each of many accounts never reaches that for any one of them. Here an address
with AXES_SPRAY_LIMIT failed logins in the cool-off, whatever the usernames, is locked out as
well. The count is axes' own attempt rows (in the database, shared by every web process),
and the limit is far above one user's typos, so a ward behind one NAT address is not locked
out by a colleague's mistakes."""

from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone


def address_failures(*, ip: str | None) -> int:
    """Failed logins from ``ip`` within the cool-off, across every username."""
    if not ip:
        return 0
    since = timezone.now() - (settings.AXES_COOLOFF_TIME or timedelta(days=36500))
    attempts = AccessAttempt.objects.filter(ip_address=ip, attempt_time__gte=since)
    return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0


def _spraying(request) -> bool:
    ip = getattr(request, "axes_ip_address", None)
    return address_failures(ip=ip) >= settings.AXES_SPRAY_LIMIT


class SprayAwareHandler(AxesDatabaseHandler):
    def is_locked(self, request, credentials=None) -> bool:
        """Before authenticating: the (username, address) lockout, or the address's."""
        return super().is_locked(request, credentials) or _spraying(request)

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        """After a refusal (axes' own, or a wrong password): flag the request as locked out
        when the address is, so that axes' middleware answers 429 as for a locked account."""
        super().user_login_failed(sender, credentials, request, **kwargs)
        if (
            request is not None
            and not getattr(request, "axes_locked_out", False)
            and _spraying(request)
        ):
            request.axes_locked_out = True
            request.axes_credentials = credentials
