from django.contrib import admin

from xrayweb.audit.admin import AppendOnlyAdmin
from xrayweb.directory.models import DirectoryAccount


@admin.register(DirectoryAccount)
class DirectoryAccountAdmin(AppendOnlyAdmin):
    """Which accounts come from the hospital directory, when the directory last vouched for
    them, and whom the check turned off and why. Read-only: the directory decides (an account
    is turned off here from the user's own page)."""

    list_display = ("user", "dn", "checked_at", "removed_at", "removed_reason")
    list_filter = ("removed_at",)
    search_fields = ("user__username", "dn")
