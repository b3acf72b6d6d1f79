import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from xrayweb.accounts.roles import ADMIN, user_has_any_role
from xrayweb.audit.addresses import client_ip
from xrayweb.audit.selectors import chain_check_latest
from xrayweb.ops.health import health_check
from xrayweb.ops.metrics import metrics_exposition

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


def _metrics_caller(request) -> str | None:
    """Who may read /metrics: "network" (an address in METRICS_ALLOWED_NETWORKS), "token"
    (``Authorization: Bearer`` with METRICS_TOKEN), "admin" (an admin's API token or
    session); None for anyone else."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if settings.METRICS_TOKEN and header.startswith("Bearer "):
        given = header.removeprefix("Bearer ").strip().encode()
        if hmac.compare_digest(given, settings.METRICS_TOKEN.encode()):
            return "token"
    if header.startswith("Token "):
        try:
            found = TokenAuthentication().authenticate(request)
        except AuthenticationFailed:
            found = None
        if found and user_has_any_role(found[0], {ADMIN}):
            return "admin"
    if user_has_any_role(request.user, {ADMIN}):
        return "admin"
    address = client_ip(request)
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS):
        return "network"
    return None


@login_not_required  # Prometheus has no session: the network, a scrape token or an API token
@never_cache
@require_GET
def metrics(request):
    """Prometheus metrics (xrayweb/ops/metrics.py) for the internal network, a scrape token or
    an admin; 403 for anyone else, without saying which series exist."""
    if _metrics_caller(request) is None:
        return HttpResponse(
            "Metrics are for the internal network, the scrape token or an admin's API token.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    body, content_type = metrics_exposition()
    return HttpResponse(body, content_type=content_type)
