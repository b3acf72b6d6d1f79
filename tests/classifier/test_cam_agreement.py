"""The fast path against pytorch-grad-cam's GradCAM (fp32), and bf16 against fp32, on every
real sample image with the shipped bundle: same label for >= 99% of images, probabilities
within 0.02, heatmap Pearson r >= 0.95 (each member and the fused map; two empty maps agree)
for >= 98% of images."""

import numpy as np
import pytest
from PIL import Image

from classifier import DEFAULT_BUNDLE, load_bundle
from tests.conftest import SAMPLE_DIR


@pytest.fixture(scope="module")
def images():
    return [Image.open(p).convert("L") for p in sorted((SAMPLE_DIR / "images").glob("*.jpg"))]


@pytest.fixture(scope="module")
def run(images):
    cache = {}

    def run(precision: str, engine: str = "fast"):
        if (precision, engine) not in cache:
            predictor = load_bundle(
                DEFAULT_BUNDLE, device="cpu", precision=precision, cam_engine=engine
            )
            cache[precision, engine] = predictor.predict(images)
        return cache[precision, engine]

    return run


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _maps_agree(a: np.ndarray, b: np.ndarray) -> bool:
    """Pearson r >= 0.95, or both empty: a film with no positive Grad-CAM evidence for the
    called class has an all-zero map (the bundle trained with the CAM penalty has some)."""
    if not a.any() or not b.any():
        return not a.any() and not b.any()
    return _pearson(a, b) >= 0.95


def assert_agree(ours, reference):
    assert len(ours) == len(reference) > 100
    same_label = np.mean([a.label == b.label for a, b in zip(ours, reference, strict=True)])
    assert same_label >= 0.99
    worst_probability = max(
        abs(a.probabilities[c] - b.probabilities[c])
        for a, b in zip(ours, reference, strict=True)
        for c in a.probabilities
    )
    assert worst_probability <= 0.02
    # A CAM explains the predicted class: compare like with like.
    pairs = [(a, b) for a, b in zip(ours, reference, strict=True) if a.label == b.label]
    for member in [*ours[0].heatmaps, "fused"]:
        agree = [
            _maps_agree(a.fused_heatmap, b.fused_heatmap)
            if member == "fused"
            else _maps_agree(a.heatmaps[member], b.heatmaps[member])
            for a, b in pairs
        ]
        # At most 2% apart: a map at the ReLU boundary (all but empty) can be empty in one
        # precision and not in the other. Measured with the shipped bundle on the 119 films:
        # 0 apart for fp32 against pytorch-grad-cam, 1 (mobilenet and fused) for bf16.
        assert np.mean(agree) >= 0.98, (member, [i for i, ok in enumerate(agree) if not ok])


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fast_path_agrees_with_pytorch_grad_cam_in_fp32(run, precision):
    assert_agree(run(precision), run("fp32", "pytorch-grad-cam"))


@pytest.mark.slow
def test_bf16_path_agrees_with_fp32_path(run):
    assert_agree(run("bf16"), run("fp32"))
