from django.contrib import messages
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from xrayweb.accounts.services import shortcuts_set


@require_POST
def shortcuts_toggle(request):
    """The review page's "single-key shortcuts on/off" button: remembered for this user, then
    back to the page it came from."""
    enabled = request.POST.get("shortcuts") == "on"
    shortcuts_set(user=request.user, enabled=enabled)
    messages.success(request, f"Single-key shortcuts are {'on' if enabled else 'off'}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    return redirect(target)
