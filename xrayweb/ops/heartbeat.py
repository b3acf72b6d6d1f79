"""Worker heartbeats: each Celery worker writes its row every WORKER_HEARTBEAT_SECONDS from a
thread of its own (connected to Celery's worker_ready signal in OpsConfig.ready), and says
when it stops cleanly. A worker that dies (the embedded broker's JSONDecodeError, an out of
memory kill) simply stops writing, and the health check says so."""

import logging
import os
import threading

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from xrayweb.ops.models import WorkerHeartbeat

logger = logging.getLogger(__name__)
_stop = threading.Event()


def heartbeat_write(*, hostname: str, queues: str, started_at) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname,
        defaults={
            "queues": queues[:255],
            "pid": os.getpid(),
            "started_at": started_at,
            "last_seen": now,
            "stopped_at": None,
        },
    )


def _beat(hostname: str, queues: str) -> None:
    started_at = timezone.now()
    while True:
        try:
            close_old_connections()
            heartbeat_write(hostname=hostname, queues=queues, started_at=started_at)
        except Exception:  # the database away for a moment: the next beat tries again
            logger.exception("worker heartbeat not written")
        finally:
            connections.close_all()  # this thread's own connection
        if _stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
            return


def on_worker_ready(sender=None, **kwargs) -> None:
    """Celery's worker_ready: ``sender`` is the worker's consumer."""
    hostname = getattr(sender, "hostname", "") or "worker"
    queues = ",".join(sorted(q.name for q in sender.task_consumer.queues)) if sender else ""
    _stop.clear()
    threading.Thread(target=_beat, args=(hostname, queues), name="heartbeat", daemon=True).start()


def on_worker_shutdown(sender=None, **kwargs) -> None:
    _stop.set()
    try:
        WorkerHeartbeat.objects.filter(hostname=getattr(sender, "hostname", "")).update(
            stopped_at=timezone.now()
        )
    except Exception:
        logger.exception("worker stop not recorded")


def workers_state() -> dict:
    """{"ok", "answering": workers seen within WORKER_STALE_SECONDS, "last_seen_s": seconds
    since any worker was last seen (None: never), "error": the sentence when not ok}."""
    stale = settings.WORKER_STALE_SECONDS
    latest = (
        WorkerHeartbeat.objects.filter(stopped_at__isnull=True)
        .order_by("-last_seen")
        .values_list("last_seen", flat=True)
    )
    now = timezone.now()
    ages = [(now - seen).total_seconds() for seen in latest[:50]]
    answering = sum(age <= stale for age in ages)
    if answering:
        return {"ok": True, "answering": answering, "last_seen_s": round(min(ages))}
    if not ages:
        return {
            "ok": False,
            "answering": 0,
            "last_seen_s": None,
            "error": "no worker has answered yet",
        }
    age = round(min(ages))
    return {
        "ok": False,
        "answering": 0,
        "last_seen_s": age,
        "error": f"no worker has answered for {age} s",
    }
