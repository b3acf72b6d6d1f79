from django.contrib import admin

from xrayweb.studies.models import Study


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "patient_id",
        "accession",
        "status",
        "assessability",
        "created_at",
        "uploaded_by",
    ]
    list_filter = ["status", "assessability", "assessability_overrule"]
    search_fields = ["patient_id", "accession"]
    readonly_fields = [f.name for f in Study._meta.fields]

    def has_add_permission(self, request):
        return False
