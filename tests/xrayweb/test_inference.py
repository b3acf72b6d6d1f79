import io
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from PIL import Image

from classifier import DEFAULT_CLASSES
from xrayweb.errors import ApplicationError
from xrayweb.inference import runtime
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.inference.services.registry import (
    model_version_activate,
    model_version_ensure_default,
    model_version_register,
)
from xrayweb.inference.tasks import predict_study
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create


@pytest.fixture
def study(staff, sample_images):
    return study_create(
        user=staff,
        patient_id="P1",
        accession="A1",
        data=sample_images[0].read_bytes(),
        filename="x.jpg",
    )


def test_registering_a_bundle_is_idempotent_and_reads_classes_from_it(db, tiny_bundle):
    first = model_version_register(bundle_path=tiny_bundle, name="v1")
    again = model_version_register(bundle_path=tiny_bundle, name="other")
    assert first.pk == again.pk
    assert first.classes == list(DEFAULT_CLASSES)
    assert [m["arch"] for m in first.members] == ["mobilenet_v2", "vgg11_bn"]
    assert not first.is_active


def test_activating_a_version_deactivates_the_others_and_keeps_them(db, tiny_bundle, tmp_path):
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(tiny_bundle.read_bytes() + b" ")  # another hash, same metadata
    one = model_version_register(bundle_path=tiny_bundle, name="one", activate=True)
    two = model_version_register(bundle_path=copy, name="two", activate=True)
    one.refresh_from_db()
    assert two.is_active and not one.is_active
    model_version_activate(version=one, actor=None, via="command")
    assert list(ModelVersion.objects.filter(is_active=True)) == [one]
    assert ModelVersion.objects.count() == 2


def test_ensure_default_activates_the_shipped_bundle_when_an_upgrade_replaced_it(
    db, tiny_bundle, tiny_bundle_with_lungs, tmp_path
):
    import shutil

    shipped = tmp_path / "default.safetensors"
    shutil.copy(tiny_bundle, shipped)
    old = model_version_ensure_default(bundle_path=shipped)
    shutil.copy(tiny_bundle_with_lungs, shipped)  # the upgrade writes a new bundle in place
    new = model_version_ensure_default(bundle_path=shipped)
    old.refresh_from_db()
    assert new != old and new.is_active and not old.is_active
    assert new.sha256 != old.sha256
    assert model_version_ensure_default(bundle_path=shipped) == new  # and only once


def test_ensure_default_registers_only_when_nothing_is_active(db, tiny_bundle):
    version = model_version_ensure_default(bundle_path=tiny_bundle)
    assert version.is_active
    assert model_version_ensure_default(bundle_path=Path("/nonexistent")) == version
    call_command("ensure_model", bundle=tiny_bundle)
    assert ModelVersion.objects.count() == 1


def test_registering_a_file_that_is_not_a_bundle_is_an_application_error(db, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ApplicationError, match="cannot register"):
        model_version_register(bundle_path=bad)


def test_prediction_run_stores_probabilities_heatmaps_and_provenance(active_version, study):
    prediction = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)[0]
    study.refresh_from_db()
    assert study.status == Study.Status.DONE
    assert prediction.model_version == active_version
    assert prediction.bundle_sha256 == active_version.sha256
    assert prediction.label in active_version.classes
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert set(prediction.member_probabilities) == {"mobilenet", "vgg"}
    assert prediction.cam_layers == {"mobilenet": "features.18", "vgg": "features.27"}
    assert set(prediction.heatmaps) == {"fused", "mobilenet", "vgg"}
    for path in prediction.heatmaps.values():
        with default_storage.open(path) as fh:
            overlay = Image.open(io.BytesIO(fh.read()))
        assert overlay.format == "PNG"
        # The X-ray's aspect ratio, at most 512 pixels on the longest side (the page scales it).
        scale = min(1.0, 512 / max(study.image_width, study.image_height))
        expected = (round(study.image_width * scale), round(study.image_height * scale))
        assert overlay.size == expected
    assert prediction.duration_ms >= 0
    # This bundle has no lung segmenter: no mask, no CAM lung fraction.
    assert prediction.lung_mask == "" and prediction.cam_lung_fraction is None
    assert not (Path(default_storage.location) / "masks").exists()


def test_a_bundle_with_a_segmenter_stores_a_lung_mask_that_lines_up_with_the_heatmaps(
    db, staff, tiny_bundle_with_lungs
):
    import numpy as np

    model_version_register(bundle_path=tiny_bundle_with_lungs, activate=True)
    # Wider than tall and over 512 pixels: both PNGs are scaled down the same way.
    film = Image.open(sorted(Path(__file__).parents[1].glob("data/cxr_sample/images/*.jpg"))[0])
    out = io.BytesIO()
    film.convert("L").resize((900, 640)).save(out, "PNG")
    study = study_create(user=staff, patient_id="P1", accession="A1", data=out.getvalue())
    prediction = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)[0]
    assert prediction.lung_mask.startswith(f"masks/{study.pk}-")
    assert prediction.lung_mask.endswith(".png")
    with default_storage.open(prediction.lung_mask) as fh:
        mask = Image.open(io.BytesIO(fh.read()))
        mask.load()
    with default_storage.open(prediction.heatmaps["fused"]) as fh:
        heatmap = Image.open(io.BytesIO(fh.read()))
    assert mask.format == "PNG" and mask.mode == "1"
    assert mask.size == heatmap.size == (512, 364)
    inside = np.asarray(mask)
    assert 0 < inside.mean() < 1  # a shape, neither empty nor the whole film
    assert 0.0 <= prediction.cam_lung_fraction <= 1.0


def test_a_failing_inference_marks_the_study_failed_with_the_reason(db, study):
    # No active model version: inference cannot run.
    with pytest.raises(runtime.InferenceError):
        predict_study.run(study.pk)
    study.refresh_from_db()
    assert study.status == Study.Status.FAILED
    assert "no active model version" in study.failure_reason
    assert Prediction.objects.count() == 0


def test_a_bundle_changed_on_disk_is_refused(db, tiny_bundle, tmp_path, study):
    copy = tmp_path / "b.safetensors"
    copy.write_bytes(tiny_bundle.read_bytes())
    model_version_register(bundle_path=copy, activate=True)
    copy.write_bytes(tiny_bundle.read_bytes() + b"tampered")
    runtime._predictors.clear()
    with pytest.raises(runtime.InferenceError, match="hash mismatch"):
        predict_study.run(study.pk)
    study.refresh_from_db()
    assert study.status == Study.Status.FAILED


def test_the_worker_can_run_the_pytorch_grad_cam_engine(active_version, study, settings):
    settings.INFERENCE_CAM_ENGINE = "pytorch-grad-cam"
    runtime._predictors.clear()
    try:
        prediction = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)[0]
        assert runtime.predictor_for(active_version).cam_engine == "pytorch-grad-cam"
    finally:
        runtime._predictors.clear()
    assert set(prediction.heatmaps) == {"fused", "mobilenet", "vgg"}


def test_heatmap_png_is_jet_coloured_and_capped_at_512_pixels():
    import numpy as np
    from matplotlib import colormaps

    from xrayweb.inference.overlays import heatmap_png

    ramp = np.tile(np.linspace(0.0, 1.0, 300), (200, 1))
    small = Image.open(io.BytesIO(heatmap_png(ramp))).convert("RGB")
    expected = (colormaps["jet"](ramp)[..., :3] * 255).round()
    assert small.size == (300, 200)
    assert np.abs(np.asarray(small, dtype=float) - expected).max() <= 6  # 256 levels
    large = Image.open(io.BytesIO(heatmap_png(np.zeros((2000, 2500)))))
    assert large.size == (512, 410)


def test_mask_png_is_one_bit_at_the_heatmaps_size_and_keeps_the_mask():
    import numpy as np

    from xrayweb.inference.overlays import mask_png

    mask = np.zeros((200, 300), dtype=bool)
    mask[50:150, 30:120] = True
    small = Image.open(io.BytesIO(mask_png(mask)))
    assert small.mode == "1" and small.size == (300, 200)
    assert (np.asarray(small) == mask).all()
    large = Image.open(io.BytesIO(mask_png(np.ones((2000, 2500), dtype=bool))))
    assert large.size == (512, 410) and np.asarray(large).all()
