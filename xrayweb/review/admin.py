from django.contrib import admin

from xrayweb.audit.admin import AppendOnlyAdmin
from xrayweb.review.models import Review


@admin.register(Review)
class ReviewAdmin(AppendOnlyAdmin):
    list_display = [
        "study",
        "label",
        "assessability",
        "kind",
        "reviewer",
        "created_at",
        "agrees_with_model",
    ]
    list_filter = ["kind", "assessability"]
