import numpy as np
import pytest
import torch
from PIL import Image

from classifier import BundleError, load_bundle, read_metadata
from classifier.bundle import (
    attach_segmenter,
    load_bundle_members,
    load_segmenter,
    save_bundle,
    save_segmenter,
)
from classifier.segmentation import (
    SegmenterSpec,
    UNetConfig,
    cam_lung_fraction,
    dice,
    masks_at,
    unet,
)


@pytest.mark.parametrize("size", [(64, 64), (50, 70), (33, 31)])
def test_unet_gives_one_logit_per_pixel_at_any_size(size):
    net = unet(UNetConfig(widths=(4, 8, 16))).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, *size))
    assert out.shape == (2, 1, *size)


def test_segmenter_metadata_refuses_an_input_too_small_for_its_levels():
    config = {"widths": [4, 8, 16, 32], "in_channels": 1}
    with pytest.raises(BundleError, match="cannot take 4 px"):
        SegmenterSpec.from_dict({"config": config, "input_size": 4})
    assert SegmenterSpec.from_dict({"config": config, "input_size": 8}).input_size == 8


def test_unet_default_is_the_four_level_16_to_128_channel_network():
    net = unet()
    assert [block[0].out_channels for block in net.down] == [16, 32, 64, 128]
    assert sum(p.numel() for p in net.parameters()) < 2_500_000


def test_cam_lung_fraction_is_the_share_of_heat_inside_the_mask():
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[0, 0], cam[3, 3] = 3.0, 1.0
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    assert cam_lung_fraction(cam, mask) == pytest.approx(0.75)
    assert cam_lung_fraction(cam, np.ones_like(mask)) == pytest.approx(1.0)
    assert cam_lung_fraction(cam, np.zeros_like(mask)) == 0.0
    assert cam_lung_fraction(np.zeros_like(cam), mask) is None


def test_dice_of_masks():
    a = np.zeros((4, 4), dtype=bool)
    b = a.copy()
    a[:2], b[1:3] = True, True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_masks_come_back_at_each_requested_shape():
    probs = torch.zeros(2, 1, 8, 8)
    probs[:, :, :, :4] = 1.0  # left half is lung
    masks = masks_at(probs, [(16, 16), (10, 30)], 0.5)
    assert [m.shape for m in masks] == [(16, 16), (10, 30)]
    assert masks[0][:, :7].all() and not masks[0][:, 9:].any()


def test_segmenter_file_round_trips_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    net = unet(UNetConfig(widths=(4, 8))).eval()
    spec = SegmenterSpec(config={"widths": [4, 8], "in_channels": 1}, input_size=32)
    save_segmenter(tmp_path / "s.safetensors", net, spec)
    loaded_spec, loaded = load_segmenter(tmp_path / "s.safetensors")
    assert loaded_spec == spec
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)


def test_bundle_carries_the_segmenter_and_keeps_its_members(tiny_bundle, tiny_bundle_with_lungs):
    meta = read_metadata(tiny_bundle_with_lungs)
    assert meta.segmenter["arch"] == "unet" and meta.segmenter["input_size"] == 32
    assert meta.members == read_metadata(tiny_bundle).members
    _, before = load_bundle_members(tiny_bundle)
    _, after = load_bundle_members(tiny_bundle_with_lungs)
    for name in before:
        for (k, a), (_, b) in zip(
            before[name].state_dict().items(), after[name].state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), k
    assert load_segmenter(tiny_bundle) is None
    assert load_segmenter(tiny_bundle_with_lungs) is not None


def test_attaching_from_a_file_without_a_segmenter_is_refused(tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="holds no segmenter"):
        attach_segmenter(tiny_bundle, tiny_bundle, tmp_path / "x.safetensors")


def test_metadata_naming_a_segmenter_needs_its_weights(tiny_bundle, tmp_path):
    meta, members = load_bundle_members(tiny_bundle)
    from dataclasses import replace

    with pytest.raises(BundleError, match="no segmenter weights"):
        save_bundle(tmp_path / "x.safetensors", members, replace(meta, segmenter={"arch": "unet"}))


def test_predictor_returns_a_mask_and_the_cam_lung_fraction(tiny_bundle_with_lungs):
    predictor = load_bundle(tiny_bundle_with_lungs, device="cpu")
    images = [Image.new("L", (90, 60), 128), np.random.default_rng(0).random((40, 40))]
    results = predictor.predict(images, cam=True)
    for result, shape in zip(results, [(60, 90), (40, 40)], strict=True):
        assert result.lung_mask.shape == result.fused_heatmap.shape == shape
        assert result.lung_mask.dtype == bool
        assert result.lung_area_fraction == pytest.approx(result.lung_mask.mean())
        expected = cam_lung_fraction(result.fused_heatmap, result.lung_mask)
        assert result.cam_lung_fraction == expected
        assert expected is None or 0.0 <= expected <= 1.0


def test_predictor_without_segmenter_or_cam_leaves_the_lung_fields_empty(
    tiny_bundle, tiny_bundle_with_lungs
):
    image = [Image.new("L", (50, 50), 100)]
    plain = load_bundle(tiny_bundle, device="cpu").predict(image)[0]
    assert plain.lung_mask is None and plain.cam_lung_fraction is None
    off = load_bundle(tiny_bundle_with_lungs, device="cpu", lungs=False).predict(image)[0]
    assert off.lung_mask is None
    no_cam = load_bundle(tiny_bundle_with_lungs, device="cpu").predict(image, cam=False)[0]
    assert no_cam.lung_mask is not None and no_cam.cam_lung_fraction is None


def test_the_mask_does_not_change_the_classification(tiny_bundle, tiny_bundle_with_lungs):
    image = [Image.new("L", (50, 50), 100)]
    a = load_bundle(tiny_bundle, device="cpu").predict(image)[0]
    b = load_bundle(tiny_bundle_with_lungs, device="cpu").predict(image)[0]
    assert a.label == b.label
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
