from django.contrib import admin

from xrayweb.audit.addresses import client_ip
from xrayweb.dicomnet.models import Delivery, Destination
from xrayweb.dicomnet.services import delivery_resend


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "address", "enabled", "created_at"]
    list_filter = ["kind", "enabled"]

    def has_delete_permission(self, request, obj=None):
        # A destination results were sent to keeps its history: disable it instead.
        return obj is None or not obj.deliveries.exists()


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "study",
        "kind",
        "destination",
        "status",
        "attempts",
        "delivered_at",
        "last_error",
    ]
    list_filter = ["status", "kind", "destination"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["resend"]

    def has_add_permission(self, request):
        return False  # made when a prediction or a final reading is stored

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Send the selected deliveries again")
    def resend(self, request, queryset):
        for delivery in queryset.select_related("study", "destination"):
            delivery_resend(delivery=delivery, actor=request.user, ip=client_ip(request))
        self.message_user(request, f"{queryset.count()} deliveries will be sent again.")
