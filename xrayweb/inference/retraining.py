"""Governed retraining. Imports torch (via training): only the ``retrain`` command and the
training worker import this module, never the web process."""

import hashlib
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from classifier import BundleError, read_metadata
from training.data.manifests import (
    ManifestError,
    Record,
    read_manifest,
    records_sha256,
    refuse_external,
    write_manifest,
)
from training.ensemble.config import TrainConfig
from training.ensemble.fit import fit
from training.evaluation.evaluate import evaluate_bundle
from xrayweb.errors import ApplicationError
from xrayweb.inference.locked_set import patients_assign
from xrayweb.inference.models import ModelVersion
from xrayweb.inference.selectors import model_version_active, studies_gate_overrules
from xrayweb.inference.services.registry import model_version_activate, model_version_register
from xrayweb.studies.selectors import studies_final_labelled


def patient_key(patient_id: str) -> str:
    """Pseudonymous key for a patient of this hospital: ids stay in the database."""
    return "xrayweb-" + hashlib.sha256(patient_id.encode()).hexdigest()[:20]


def local_copy(name: str) -> Path:
    """A local file for a stored image: the file itself on disk storage, otherwise (S3 and
    other remote storages) a copy cached under MODEL_DIR/image-cache by its storage name."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        cache = Path(settings.MODEL_DIR) / "image-cache" / name
        if not cache.is_file():
            cache.parent.mkdir(parents=True, exist_ok=True)
            with default_storage.open(name, "rb") as source:
                cache.write_bytes(source.read())
        return cache


def reviewed_records() -> tuple[list[Record], dict]:
    """Every study with a final radiologist label (a single read, two agreeing reads, an
    arbitration, or a later amendment), and a fingerprint of that set: the newest review
    id, image hash and label of each. Studies still awaiting a second read or arbitration
    are left out, and so are films a radiologist found not diagnostic (they have no label)."""
    records, rows = [], []
    for study in studies_final_labelled():
        records.append(
            Record(
                path=local_copy(study.image.name),
                label=study.final_label,
                patient_id=patient_key(study.patient_id),
                source="xrayweb",
            )
        )
        rows.append(f"{study.last_review}:{study.image_sha256}:{study.final_label}")
    digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return records, {"reviews": len(records), "reviews_sha256": digest}


# How the active version sees a film: a new version keeps it (the command has no options for
# these; change them with ``python -m training train`` and promote that bundle).
SEEING = (
    "intensity",
    "crop",
    "crop_margin",
    "render",
    "not_covid_labels",
    "ema",
    "cam_lungs",
    "adversary",
)


def _as_active_sees(config: TrainConfig, active) -> TrainConfig:
    """The config with the active version's segmenter (the same lungs) and its way of seeing
    a film (intensity, crop, rendering augmentation, partial labels, EMA, the penalty on
    Grad-CAM outside the lungs, the source adversary)."""
    try:
        meta = read_metadata(Path(active.bundle_path))
    except BundleError as exc:
        raise ApplicationError(f"the active version's bundle: {exc}") from exc
    recipe = meta.training.get("config", {})
    changes = {key: recipe[key] for key in SEEING if key in recipe}
    if config.segmenter is None and meta.segmenter:
        changes["segmenter"] = active.bundle_path
    if config.gate is None and meta.gate:
        changes["gate"] = active.bundle_path
    return replace(config, **changes)


def gate_overrule_records() -> dict[str, list[Record]]:
    """The films radiologists found assessable after all, and not diagnostic, as records for
    refitting the gate (training.gate.refit_gate)."""
    return {
        key: [
            Record(
                path=local_copy(study.image.name),
                label=study.final_label,
                patient_id=patient_key(study.patient_id),
                source="xrayweb",
            )
            for study in studies
        ]
        for key, studies in studies_gate_overrules().items()
    }


def model_retrain(
    *,
    manifests: list[Path],
    from_reviews: bool,
    config: TrainConfig,
    user=None,
    activate: bool = False,
    force: bool = False,
    name: str = "",
    progress: bool = True,
) -> ModelVersion:
    """Train a candidate on every patient outside the locked set, evaluate it and the active
    version on the locked set, register it, and promote it if the gate (or ``force``) allows."""
    records, provenance = [], []
    for manifest in manifests:
        rows = read_manifest(manifest)
        try:
            refuse_external(rows)
        except ManifestError as exc:
            raise ApplicationError(f"{manifest}: {exc}") from exc
        records += rows
        provenance.append(
            {"manifest": str(manifest), "images": len(rows), "sha256": records_sha256(rows)}
        )
    run = f"{timezone.now():%Y%m%d-%H%M%S}"
    settings.MODEL_DIR.mkdir(parents=True, exist_ok=True)
    if from_reviews:
        reviewed, fingerprint = reviewed_records()
        if reviewed:
            export = settings.MODEL_DIR / f"{run}-reviews.csv"
            write_manifest(export, reviewed)
            fingerprint["manifest"] = export.name
        records += reviewed
        provenance.append(fingerprint)
    if not records:
        raise ApplicationError("No training data: give --manifest or review some studies first.")
    splits = patients_assign(patient_keys={r.patient_id for r in records})
    train = [r for r in records if splits[r.patient_id] == "train"]
    locked = [r for r in records if splits[r.patient_id] == "locked"]
    if not locked or not train:
        raise ApplicationError("Too few patients to keep a locked evaluation set apart.")
    active = model_version_active()
    if config.classes is None and active is not None:
        config.classes = list(active.classes)
    if active is not None:
        config = _as_active_sees(config, active)
    out = settings.MODEL_DIR / f"{run}.safetensors"
    overrules = gate_overrule_records() if config.gate else {}
    try:
        meta = fit(
            train,
            out,
            config,
            progress=progress,
            data_sources=provenance,
            test_records=locked,
            gate_frontal=overrules.get("assessable", []),
            gate_refused=overrules.get("not_diagnostic", []),
        )
    except (ValueError, BundleError) as exc:
        raise ApplicationError(str(exc)) from exc
    candidate = locked_summary(meta.metrics["ensemble"])
    incumbent = None
    if active is not None:
        incumbent = locked_summary(evaluate_bundle(Path(active.bundle_path), locked, cam=False))
    promoted, reason = promotion_gate(candidate=candidate, active=incumbent)
    version = model_version_register(bundle_path=out, name=name, user=user, via="retrain")
    version.locked_metrics = candidate
    version.gate = {
        "passed": promoted,
        "reason": reason,
        "active": incumbent,
        "active_version": active.name if active else None,
        "locked_patients": len({r.patient_id for r in locked}),
        "forced": False,
    }
    if activate and (promoted or force):
        version.gate["forced"] = not promoted
        model_version_activate(version=version, actor=user, via="retrain")
    version.save(update_fields=["locked_metrics", "gate"])
    return version


def model_retrain_job(job: dict, *, progress: bool = False) -> ModelVersion:
    """Run a retraining job described in plain data (as the command or a Celery task gives it)."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=job["user_id"]).first() if job["user_id"] else None
    return model_retrain(
        manifests=[Path(m) for m in job["manifests"]],
        from_reviews=job["from_reviews"],
        config=TrainConfig(**job["config"]),
        user=user,
        activate=job["activate"],
        force=job["force"],
        name=job["name"],
        progress=progress,
    )


def locked_summary(report: dict) -> dict:
    """The figures the promotion gate compares, from an evaluation report."""
    covid = report["per_class"].get("covid19", {})
    return {
        "n": report["n"],
        "accuracy": report["accuracy"],
        "macro_auc": report["macro_auc"],
        "covid19_sensitivity": covid.get("sensitivity"),
        "ece": report.get("ece"),
    }


def promotion_gate(*, candidate: dict, active: dict | None) -> tuple[bool, str]:
    """Promote only if neither locked-set macro AUC nor covid19 sensitivity gets worse."""
    if active is None:
        return True, "no active version to compare with"
    worse = [
        f"{key} {candidate[key]:.3f} < {active[key]:.3f}"
        for key in ("macro_auc", "covid19_sensitivity")
        if active.get(key) is not None
        and (candidate.get(key) is None or candidate[key] < active[key])
    ]
    if worse:
        return False, "worse than the active version on the locked set: " + "; ".join(worse)
    return True, "not worse than the active version on the locked set"
