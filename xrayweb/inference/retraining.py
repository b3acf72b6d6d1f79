"""Retraining from manifests and radiologist labels. Imports torch (via training): only the
``retrain`` command and workers import this module, never the web process."""

from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from training.data import Record, read_manifest
from training.loop import TrainConfig, fit
from xrayweb.errors import ApplicationError
from xrayweb.inference.models import ModelVersion
from xrayweb.inference.services import model_version_active, model_version_register
from xrayweb.review.models import Review
from xrayweb.studies.models import Study


def reviewed_records() -> list[Record]:
    """Every reviewed study with its current (newest) radiologist label."""
    newest = Review.objects.filter(study=OuterRef("pk")).order_by("-created_at", "-id")
    studies = Study.objects.annotate(current_label=Subquery(newest.values("label")[:1])).filter(
        current_label__isnull=False
    )
    return [
        Record(
            path=Path(default_storage.path(study.image.name)),
            label=study.current_label,
            patient_id=f"xrayweb-{study.patient_id}",
            source="xrayweb",
        )
        for study in studies
    ]


def model_retrain(
    *,
    manifests: list[Path],
    from_reviews: bool,
    config: TrainConfig,
    user=None,
    activate: bool = False,
    name: str = "",
    progress: bool = True,
) -> ModelVersion:
    """Train a new version on the given data, register it, and optionally activate it."""
    records = [r for manifest in manifests for r in read_manifest(manifest)]
    n_reviewed = 0
    if from_reviews:
        reviewed = reviewed_records()
        n_reviewed = len(reviewed)
        records += reviewed
    if not records:
        raise ApplicationError("No training data: give --manifest or review some studies first.")
    active = model_version_active()
    if config.classes is None and active is not None:
        config.classes = list(active.classes)
    settings.MODEL_DIR.mkdir(parents=True, exist_ok=True)
    out = settings.MODEL_DIR / f"{timezone.now():%Y%m%d-%H%M%S}.safetensors"
    sources = [{"manifest": str(m)} for m in manifests]
    if from_reviews:
        sources.append({"database_reviews": n_reviewed})
    try:
        fit(records, out, config, progress=progress, data_sources=sources)
    except ValueError as exc:
        raise ApplicationError(str(exc)) from exc
    return model_version_register(bundle_path=out, name=name, user=user, activate=activate)
