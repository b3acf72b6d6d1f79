"""Worker-only: the per-process Predictor and the batched inference run. The web never
imports this.

The Predictor is loaded lazily inside the worker child process, on its first task, so the
prefork parent never loads torch or touches CUDA.
"""

import io
import logging
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.inference.overlays import heatmap_png, mask_png
from xrayweb.inference.selectors import model_version_active
from xrayweb.inference.services.claims import (
    studies_claim,
    studies_recover_crashed,
    studies_release,
    study_mark_failed,
)
from xrayweb.inference.services.predictions import PredictionResult, predictions_record
from xrayweb.inference.tasks import study_enqueue
from xrayweb.studies.models import Study

logger = logging.getLogger(__name__)
_predictors: dict[str, object] = {}


class InferenceError(Exception):
    """Inference cannot run for a reason worth showing on the study (no model, bad bundle)."""


def predictor_for(version: ModelVersion):
    import torch  # in the worker only

    from classifier import bundle_sha256, load_bundle

    if version.sha256 not in _predictors:
        path = Path(version.bundle_path)
        if not path.is_file():
            raise InferenceError(f"model bundle for {version.name} is missing: {path}")
        if bundle_sha256(path) != version.sha256:
            raise InferenceError(f"bundle for {version.name} changed on disk (hash mismatch)")
        if settings.INFERENCE_THREADS:
            torch.set_num_threads(settings.INFERENCE_THREADS)
        predictor = load_bundle(
            path,
            device=settings.INFERENCE_DEVICE,
            precision=settings.INFERENCE_PRECISION,
            batch_size=settings.INFERENCE_BATCH_SIZE,
            cam_engine=settings.INFERENCE_CAM_ENGINE,
            cam_max_side=settings.INFERENCE_CAM_MAX_SIDE,
        )
        predictor.warm_up()  # the first burst after a worker starts runs at full speed
        _predictors.clear()  # one model in memory per process
        _predictors[version.sha256] = predictor
        logger.info(
            "model %s loaded on %s, bf16 %s, %d torch threads",
            version.name,
            predictor.device,
            predictor.bf16,
            torch.get_num_threads(),
        )
    return _predictors[version.sha256]


def _load_image(study: Study) -> Image.Image:
    with study.image.open("rb") as fh:
        image = Image.open(io.BytesIO(fh.read()))
        image.load()
    return image


def _store_heatmaps(study: Study, result) -> dict[str, str]:
    stem = f"heatmaps/{study.pk}-{uuid.uuid4().hex[:12]}"
    maps = {"fused": result.fused_heatmap, **result.heatmaps}
    return {
        name: default_storage.save(f"{stem}-{name}.png", ContentFile(heatmap_png(heatmap)))
        for name, heatmap in maps.items()
    }


def _store_mask(study: Study, result) -> str:
    """The lung mask as a PNG the size of the heatmaps; "" when the bundle has no segmenter."""
    if result.lung_mask is None:
        return ""
    name = f"masks/{study.pk}-{uuid.uuid4().hex[:12]}.png"
    return default_storage.save(name, ContentFile(mask_png(result.lung_mask)))


def _images_load(studies, *, ready: list, unreadable: set) -> list[Image.Image]:
    """The studies' images; a study whose image cannot be read is failed (it joins
    ``unreadable``), the rest join ``ready`` in the order of the images returned."""
    images = []
    for study in studies:
        try:
            images.append(_load_image(study))
            ready.append(study)
        except (OSError, Image.DecompressionBombError) as exc:
            unreadable.add(study.pk)
            study_mark_failed(study_id=study.pk, reason=f"cannot read the image: {exc}")
    return images


def _files_delete(paths: list[str | None]) -> None:
    for path in paths:
        if path:
            default_storage.delete(path)


def prediction_batch_run(*, study_id: int, max_studies: int, token: str = "") -> list[Prediction]:
    """Claim this study and other queued ones, ``max_studies`` in all, predict them in one
    batch with Grad-CAM, and record them in one transaction. Returns the predictions made
    (none if there was nothing to claim)."""
    version = model_version_active()
    if version is None:
        raise InferenceError("no active model version; run 'manage.py ensure_model'")
    # A batch whose worker died comes back one study at a time (a poison film, issue 27).
    for pk in studies_recover_crashed(
        study_id=study_id,
        token=token,
        lease_seconds=settings.INFERENCE_LEASE_SECONDS,
        max_attempts=settings.INFERENCE_MAX_ATTEMPTS,
    ):
        if pk != study_id:
            study_enqueue(pk)
    studies = studies_claim(study_id=study_id, limit=max_studies, token=token)
    if not studies:
        return []
    ready, unreadable, heatmaps, masks = [], set(), [], []
    try:
        predictor = predictor_for(version)
        images = _images_load(studies, ready=ready, unreadable=unreadable)
        started = time.perf_counter()
        results = predictor.predict(images, cam=True) if images else []
        duration_ms = round((time.perf_counter() - started) * 1000)
        for study, result in zip(ready, results, strict=True):
            heatmaps.append(_store_heatmaps(study, result))
            masks.append(_store_mask(study, result))
        predictions = predictions_record(
            version=version,
            results=[
                PredictionResult(
                    study,
                    r.label,
                    r.probabilities,
                    r.members,
                    maps,
                    lung_mask=mask,
                    cam_lung_fraction=r.cam_lung_fraction,
                    assessment=r.assessment.to_dict(),
                    # Bundles made before conformal calibration give none (and older
                    # classifier code has no such attribute).
                    prediction_sets=getattr(r, "prediction_sets", None) or {},
                )
                for study, r, maps, mask in zip(ready, results, heatmaps, masks, strict=True)
            ],
            cam_layers=predictor.cam_layers,
            duration_ms=duration_ms,
        )
    except InferenceError as exc:  # permanent: no model, a bundle that changed on disk
        for study in studies:
            study_mark_failed(study_id=study.pk, reason=str(exc))
        raise
    except Exception as exc:
        # Perhaps transient (memory, a device error, the database). No row points at the
        # heatmaps and masks written so far: remove them. Never leave a claimed study
        # "running": queue it again, or fail it once it has had its attempts.
        _files_delete([path for maps in heatmaps for path in maps.values()] + masks)
        studies_release(
            study_ids=[s.pk for s in studies if s.pk not in unreadable],
            reason=f"{type(exc).__name__}: {exc}",
            max_attempts=settings.INFERENCE_MAX_ATTEMPTS,
        )
        raise
    logger.info("predicted %d studies in %d ms", len(predictions), duration_ms)
    return predictions
