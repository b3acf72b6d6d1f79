from django.contrib import admin

from xrayweb.review.models import AuditEvent, Review


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["study", "label", "reviewer", "created_at", "agrees_with_model"]
    readonly_fields = [f.name for f in Review._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "study", "ip"]
    list_filter = ["action"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
