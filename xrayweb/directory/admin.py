from django.contrib import admin

from xrayweb.directory.models import DirectoryAccount


@admin.register(DirectoryAccount)
class DirectoryAccountAdmin(admin.ModelAdmin):
    """Which accounts come from the hospital directory, when the directory last vouched for
    them, and whom the check turned off and why. Read-only: the directory decides (an account
    is turned off here from the user's own page)."""

    list_display = ("user", "dn", "checked_at", "removed_at", "removed_reason")
    list_filter = ("removed_at",)
    search_fields = ("user__username", "dn")
    fields = list_display
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
