"""Health of the parts a study needs: the database, the broker, a worker that answers (its
heartbeat), the active model."""

from pathlib import Path

from django.db import connection

from xrayweb.inference.models import ModelVersion
from xrayweb.ops.heartbeat import workers_state


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # any driver error means "down"; the reason is reported
        return {"ok": False, "error": type(exc).__name__}


def _broker(timeout: float) -> dict:
    from xrayweb.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            transport = conn.transport_cls
        return {"ok": True, "transport": str(transport)}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def _model() -> dict:
    try:
        version = ModelVersion.objects.filter(is_active=True).first()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    if version is None:
        return {"ok": False, "error": "no active model version"}
    if not Path(version.bundle_path).is_file():
        return {"ok": False, "name": version.name, "error": "bundle file missing"}
    return {"ok": True, "name": version.name, "sha256": version.sha256[:12]}


def _workers() -> dict:
    try:
        return workers_state()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def health_check(*, broker_timeout: float = 2.0) -> dict:
    """{"ok": all up, "database": {...}, "broker": {...}, "workers": {...}, "model": {...}}."""
    checks = {"database": _database(), "broker": _broker(broker_timeout)}
    up = checks["database"]["ok"]
    checks["workers"] = _workers() if up else {"ok": False, "error": "no db"}
    checks["model"] = _model() if up else {"ok": False, "error": "no db"}
    return {"ok": all(c["ok"] for c in checks.values()), **checks}
