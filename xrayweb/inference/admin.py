from django.contrib import admin, messages

from xrayweb.audit.addresses import client_ip
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.inference.services.registry import model_version_activate


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "created_at", "created_by", "sha256"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["activate"]

    def has_add_permission(self, request):
        return False  # versions come from training (manage.py retrain), not from a form

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Activate the selected version")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one version.", messages.ERROR)
            return
        version = model_version_activate(
            version=queryset.get(), actor=request.user, via="admin", ip=client_ip(request)
        )
        self.message_user(request, f"{version.name} is now active.")


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = [
        "study",
        "label",
        "assessable",
        "set_size",
        "cam_lung_fraction",
        "model_version",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["assessable", "model_version"]
    readonly_fields = [f.name for f in Prediction._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a prediction is part of the record the readings refer to
