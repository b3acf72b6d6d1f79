"""The study page (review, below this app) shows where its results were sent through this
tag: templates may load from any app, code imports only downwards."""

from django import template
from django.urls import reverse

from xrayweb.accounts.roles import ADMIN, user_has_any_role
from xrayweb.dicomnet.selectors import study_deliveries as deliveries_of

register = template.Library()


@register.inclusion_tag("dicomnet/_deliveries.html")
def study_deliveries(study, user) -> dict:
    is_admin = user_has_any_role(user, {ADMIN})
    return {
        "deliveries": list(deliveries_of(study=study)),
        # The peer's error may name hosts and paths: for the admins who manage destinations.
        "show_errors": is_admin,
        "dicom": bool(study.original),
        "resend_url": (
            reverse("admin:dicomnet_delivery_changelist") + f"?study__exact={study.pk}"
            if is_admin
            else ""
        ),
    }
