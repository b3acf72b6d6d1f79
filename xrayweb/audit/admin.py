from django.contrib import admin

from xrayweb.audit.models import AuditEvent


class AppendOnlyAdmin(admin.ModelAdmin):
    """History is read here, never added, changed or deleted (not even by superusers)."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(AppendOnlyAdmin):
    list_display = ["created_at", "actor", "action", "study", "ip"]
    list_filter = ["action"]
