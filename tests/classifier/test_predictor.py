import numpy as np
import pytest
import torch
from PIL import Image

from classifier import DEFAULT_CLASSES, ImageDecodeError, load_bundle
from classifier.preprocess import prepare_batch, to_gray_array


@pytest.mark.parametrize(
    ("image", "expected_max"),
    [
        (Image.new("L", (40, 30), 255), 1.0),
        (Image.new("RGB", (40, 30), (255, 255, 255)), 1.0),
        (np.full((30, 40), 65535, dtype=np.uint16), 1.0),
        (np.full((30, 40, 3), 128, dtype=np.uint8), 128 / 255),
        (np.linspace(-100, 300, 1200, dtype=np.float32).reshape(30, 40), 1.0),
    ],
)
def test_any_image_kind_becomes_a_gray_array_in_unit_range(image, expected_max):
    array = to_gray_array(image)
    assert array.shape == (30, 40) and array.dtype == np.float32
    assert array.min() >= 0.0 and np.isclose(array.max(), expected_max, atol=1e-3)


@pytest.mark.parametrize("bad", [np.zeros((3, 4, 5)), np.zeros((0, 5)), np.array([np.nan, 1.0])])
def test_unusable_arrays_raise_image_decode_error(bad):
    with pytest.raises(ImageDecodeError):
        to_gray_array(bad)


def test_prepare_batch_resizes_and_normalizes():
    batch, shapes = prepare_batch(
        [np.zeros((50, 70)), np.ones((20, 20))], 32, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    )
    assert batch.shape == (2, 3, 32, 32)
    assert shapes == [(50, 70), (20, 20)]
    assert torch.allclose(batch[0], torch.full_like(batch[0], -1.0))
    assert torch.allclose(batch[1], torch.ones_like(batch[1]))


def test_predict_returns_probabilities_members_and_heatmaps_at_input_size(tiny_bundle):
    predictor = load_bundle(tiny_bundle, device="cpu", precision="fp32", batch_size=2)
    rng = np.random.default_rng(0)
    images = [
        rng.random((90, 70), dtype=np.float32),
        Image.new("L", (50, 60), 80),
        rng.random((64, 64), dtype=np.float32),
    ]
    results = predictor.predict(images, cam_classes=["normal"])
    assert len(results) == 3
    assert predictor.classes == list(DEFAULT_CLASSES)
    for result, shape in zip(results, [(90, 70), (60, 50), (64, 64)], strict=True):
        assert set(result.probabilities) == set(predictor.classes)
        assert np.isclose(sum(result.probabilities.values()), 1.0, atol=1e-5)
        assert result.label == max(result.probabilities, key=result.probabilities.get)
        assert set(result.members) == {"mobilenet", "vgg"}
        for heatmap in [*result.heatmaps.values(), result.fused_heatmap]:
            assert heatmap.shape == shape and heatmap.dtype == np.float32
            assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
        assert set(result.class_heatmaps["normal"]) == {"mobilenet", "vgg", "fused"}


def test_predict_without_cam_gives_the_same_probabilities(tiny_bundle):
    predictor = load_bundle(tiny_bundle, device="cpu", precision="fp32")
    image = np.random.default_rng(1).random((64, 64), dtype=np.float32)
    with_cam = predictor.predict([image])[0]
    without = predictor.predict([image], cam=False)[0]
    assert without.heatmaps == {} and without.fused_heatmap is None
    for name, value in with_cam.probabilities.items():
        assert value == pytest.approx(without.probabilities[name], abs=1e-6)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_fast_gradcam_matches_the_pytorch_grad_cam_engine(tiny_bundle, sample_images):
    images = [Image.open(p) for p in sample_images[:4]]
    fast = load_bundle(tiny_bundle, device="cpu", precision="fp32").predict(images)
    library = load_bundle(
        tiny_bundle, device="cpu", precision="fp32", cam_engine="pytorch-grad-cam"
    ).predict(images)
    for ours, ref, image in zip(fast, library, images, strict=True):
        assert ours.label == ref.label
        for name in ours.probabilities:
            assert abs(ours.probabilities[name] - ref.probabilities[name]) < 1e-5
        for member, heatmap in ours.heatmaps.items():
            assert heatmap.shape == ref.heatmaps[member].shape == image.size[::-1]
            if ref.heatmaps[member].max() > 0:
                assert _pearson(heatmap, ref.heatmaps[member]) > 0.95, (member, image.filename)


def test_an_unknown_cam_engine_is_refused(tiny_bundle):
    with pytest.raises(ValueError, match="cam_engine"):
        load_bundle(tiny_bundle, device="cpu", cam_engine="guess")


def test_cam_max_side_keeps_the_aspect_ratio_and_caps_the_heatmaps(tiny_bundle):
    import numpy as np

    from classifier import load_bundle

    predictor = load_bundle(tiny_bundle, device="cpu", cam_max_side=100)
    wide, small = np.zeros((300, 500), np.uint8), np.zeros((60, 80), np.uint8)
    big, little = predictor.predict([wide, small])
    assert big.fused_heatmap.shape == (60, 100) and big.heatmaps["vgg"].shape == (60, 100)
    assert little.fused_heatmap.shape == (60, 80)  # smaller inputs keep their own size


def test_warm_up_runs_one_full_batch_with_cam_and_changes_no_result(tiny_bundle, mocker):
    predictor = load_bundle(tiny_bundle, device="cpu", batch_size=3)
    image = np.random.default_rng(1).random((80, 70), dtype=np.float32)
    before = predictor.predict([image], cam=False)[0].probabilities
    spy = mocker.spy(predictor, "_predict_batch")
    predictor.warm_up()
    (images, cam, extra, features), _ = spy.call_args
    assert spy.call_count == 1 and len(images) == 3 and cam is True and extra == []
    assert features is False
    assert predictor.predict([image], cam=False)[0].probabilities == pytest.approx(before)
