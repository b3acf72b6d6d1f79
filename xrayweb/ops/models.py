from django.db import models


class WorkerHeartbeat(models.Model):
    """A Celery worker's last sign of life (issue 27: the embedded worker died under load and
    nobody noticed). Each worker writes its row every WORKER_HEARTBEAT_SECONDS; /healthz and
    ``manage.py status`` say "no worker has answered for N s" once every row is older than
    WORKER_STALE_SECONDS."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.hostname} seen {self.last_seen:%Y-%m-%d %H:%M:%S}"
