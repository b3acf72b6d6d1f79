from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "xrayweb.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from xrayweb.audit.changes import connect

        connect()  # account and token changes into the audit chain
