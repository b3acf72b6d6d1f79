from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "xrayweb.ops"
    verbose_name = "Operations: health, status, reconciler"
