from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from xrayweb.accounts.roles import ADMIN, user_has_any_role
from xrayweb.audit.selectors import chain_check_latest
from xrayweb.ops.health import health_check

CACHE_KEY = "xrayweb:healthz"


@login_not_required  # load balancers and compose health checks have no session
@never_cache
@require_GET
def healthz(request):
    """200 when the database, the broker and the active model are all up, else 503; the body
    says which part is down (no paths, no secrets)."""
    if user_has_any_role(request.user, {ADMIN}):
        report = health_check()  # an admin asking gets it fresh
        # The alarm: a broken chain makes the report fail for admins (never verified yet is
        # reported, not an alarm).
        report["audit"] = chain_check_latest()
        report["ok"] = report["ok"] and report["audit"]["ok"] is not False
    else:
        # Anyone may ask, so anyone could flood it: the checks (a query, a broker connection)
        # run at most once per HEALTHZ_CACHE_SECONDS per process for everyone else.
        report = cache.get(CACHE_KEY)
        if report is None:
            report = health_check()
            cache.set(CACHE_KEY, report, settings.HEALTHZ_CACHE_SECONDS)
    return JsonResponse(report, status=200 if report["ok"] else 503)
