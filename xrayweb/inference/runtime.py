"""Worker-only: the per-process Predictor and the inference run. The web never imports this.

The Predictor is loaded lazily inside the worker child process, on its first task, so the
prefork parent never loads torch or touches CUDA.
"""

import io
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.inference.overlays import heatmap_png
from xrayweb.inference.services import (
    model_version_active,
    prediction_record,
    study_mark_running,
)
from xrayweb.studies.models import Study

_predictors: dict[str, object] = {}


class InferenceError(Exception):
    """Inference cannot run for a reason worth showing on the study (no model, bad bundle)."""


def predictor_for(version: ModelVersion):
    from classifier import bundle_sha256, load_bundle  # torch: in the worker only

    if version.sha256 not in _predictors:
        path = Path(version.bundle_path)
        if not path.is_file():
            raise InferenceError(f"model bundle for {version.name} is missing: {path}")
        if bundle_sha256(path) != version.sha256:
            raise InferenceError(f"bundle for {version.name} changed on disk (hash mismatch)")
        predictor = load_bundle(
            path,
            device=settings.INFERENCE_DEVICE,
            precision=settings.INFERENCE_PRECISION,
            batch_size=settings.INFERENCE_BATCH_SIZE,
            cam_engine=settings.INFERENCE_CAM_ENGINE,
        )
        _predictors.clear()  # one model in memory per process
        _predictors[version.sha256] = predictor
    return _predictors[version.sha256]


def _store_heatmaps(study: Study, result) -> dict[str, str]:
    stem = f"heatmaps/{study.pk}-{uuid.uuid4().hex[:12]}"
    maps = {"fused": result.fused_heatmap, **result.heatmaps}
    return {
        name: default_storage.save(f"{stem}-{name}.png", ContentFile(heatmap_png(heatmap)))
        for name, heatmap in maps.items()
    }


def prediction_run(*, study_id: int) -> Prediction:
    """Run the active model with Grad-CAM on one study and record the result."""
    version = model_version_active()
    if version is None:
        raise InferenceError("no active model version; run 'manage.py ensure_model'")
    study = study_mark_running(study_id=study_id)
    predictor = predictor_for(version)  # loaded once per process; not part of the timing
    with study.image.open("rb") as fh:
        image = Image.open(io.BytesIO(fh.read()))
        image.load()
    started = time.perf_counter()
    (result,) = predictor.predict([image], cam=True)
    heatmaps = _store_heatmaps(study, result)
    return prediction_record(
        study=study,
        version=version,
        label=result.label,
        probabilities=result.probabilities,
        member_probabilities=result.members,
        heatmaps=heatmaps,
        cam_layers=predictor.cam_layers,
        duration_ms=round((time.perf_counter() - started) * 1000),
    )
