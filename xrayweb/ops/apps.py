from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "xrayweb.ops"
    verbose_name = "Operations: health, status, reconciler"

    def ready(self) -> None:
        from celery.signals import worker_ready, worker_shutdown

        from xrayweb.ops.heartbeat import on_worker_ready, on_worker_shutdown

        worker_ready.connect(on_worker_ready, weak=False, dispatch_uid="ops-heartbeat")
        worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid="ops-heartbeat-stop")
