"""The study page (review, below this app) shows where its results were sent through this
tag: templates may load from any app, code imports only downwards."""

from django import template
from django.urls import reverse

from xrayweb.accounts.roles import ADMIN, user_has_any_role
from xrayweb.dicomnet.models import Delivery

register = template.Library()


@register.inclusion_tag("dicomnet/_deliveries.html")
def study_deliveries(study, user) -> dict:
    deliveries = (
        Delivery.objects.filter(study=study).select_related("destination").order_by("created_at")
        if study.original
        else Delivery.objects.none()
    )
    is_admin = user_has_any_role(user, {ADMIN})
    return {
        "deliveries": list(deliveries),
        "dicom": bool(study.original),
        "resend_url": (
            reverse("admin:dicomnet_delivery_changelist") + f"?study__exact={study.pk}"
            if is_admin
            else ""
        ),
    }
