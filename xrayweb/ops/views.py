from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from xrayweb.ops.health import health_check


@login_not_required  # load balancers and compose health checks have no session
@never_cache
@require_GET
def healthz(request):
    """200 when the database, the broker and the active model are all up, else 503; the body
    says which part is down (no paths, no secrets)."""
    report = health_check()
    return JsonResponse(report, status=200 if report["ok"] else 503)
