from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "xrayweb.audit"
    label = "audit"
    verbose_name = "Audit trail"
