"""The model registry: register a bundle, activate a version, and the default bundle
made active on a fresh install. Torch-free: imported by the web process."""

from pathlib import Path

from django.db import transaction
from django.utils import timezone

from classifier import BundleError, bundle_sha256, read_metadata
from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.errors import ApplicationError
from xrayweb.inference.models import ModelVersion
from xrayweb.inference.selectors import model_version_active


@transaction.atomic
def model_version_activate(
    *, version: ModelVersion, actor, via: str, ip: str | None = None
) -> ModelVersion:
    """Make ``version`` the one that predicts new studies, and audit who did it through which
    entry point (``via``: api, admin, command, retrain, ensure_model). ``actor`` is None only
    for the system itself (the shipped bundle activated on a fresh install)."""
    previous = model_version_active()
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    version.is_active = True
    version.activated_at = timezone.now()
    version.save(update_fields=["is_active", "activated_at"])
    audit_record(
        actor=actor,
        action=AuditEvent.Action.MODEL_ACTIVATE,
        detail={
            "model_version": version.name,
            "sha256": version.sha256,
            "previous": previous.name if previous else None,
            "via": via,
        },
        ip=ip,
    )
    return version


def model_version_register(
    *,
    bundle_path: Path,
    name: str = "",
    user=None,
    activate: bool = False,
    via: str = "command",
) -> ModelVersion:
    """Register a bundle (idempotent on its hash); metadata is read without torch. A new
    version is audited as registered by ``user`` (None: the system) through ``via``."""
    path = Path(bundle_path).resolve()
    try:
        meta = read_metadata(path)
        sha = bundle_sha256(path)
    except (BundleError, OSError) as exc:
        raise ApplicationError(f"cannot register {path}: {exc}") from exc
    with transaction.atomic():
        version = ModelVersion.objects.filter(sha256=sha).first()
        if version is None:
            version = ModelVersion.objects.create(
                name=name or f"{timezone.now():%Y%m%d-%H%M%S}-{sha[:8]}",
                bundle_path=str(path),
                sha256=sha,
                classes=list(meta.classes),
                members=[m.__dict__ for m in meta.members],
                metrics=meta.metrics,
                training={k: v for k, v in meta.training.items() if k != "history"}
                | {"created_at": meta.created_at},
                drift_reference=(meta.gate or {}).get("reference") or {},
                created_by=user,
            )
            audit_record(
                actor=user,
                action=AuditEvent.Action.MODEL_REGISTER,
                detail={"model_version": version.name, "sha256": sha, "via": via},
            )
        if activate:
            model_version_activate(version=version, actor=user, via=via)
    return version


def model_version_ensure_default(*, bundle_path: Path) -> ModelVersion:
    """Make sure some version is active, registering the shipped bundle if none is.

    An active version whose file is this bundle but whose hash is not (the shipped bundle was
    replaced by an upgrade) could serve no prediction: the new bundle is registered and
    activated in its place; the old version stays in the registry."""
    active = model_version_active()
    path = Path(bundle_path).resolve()
    if active is not None:
        replaced = Path(active.bundle_path).resolve() == path and path.is_file()
        if not replaced or bundle_sha256(path) == active.sha256:
            return active
    return model_version_register(bundle_path=path, name="", activate=True, via="ensure_model")
