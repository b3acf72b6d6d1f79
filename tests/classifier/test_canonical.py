"""The canonical preprocessing (issue 14): border trim, lung box, histogram equalisation, and a
Predictor that crops to the lungs and maps its Grad-CAM back onto the whole film."""

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from PIL import Image

from classifier import BundleError, load_bundle
from classifier.bundle import load_bundle_members, load_segmenter, save_bundle
from classifier.metadata import BundleMetadata
from classifier.preprocess import (
    content_box,
    equalize,
    full_box,
    lung_box,
    model_input,
    paste,
    scale_box,
    to_gray_array,
)


def _film(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    film = rng.random((90, 70)).astype(np.float32)
    film[30:60, 20:50] += 1.0  # something brighter than the rest
    return film / film.max()


def test_content_box_removes_black_and_white_bands_and_keeps_a_plain_film():
    film = _film()
    framed = np.pad(film, ((6, 4), (5, 3)))  # black bands
    framed[:2] = 1.0  # a white band on top of the black one
    assert content_box(framed) == (6, 96, 5, 75)
    assert content_box(film) == full_box(film.shape)


def test_content_box_never_takes_more_than_a_quarter_of_a_side():
    film = np.zeros((100, 100), dtype=np.float32)
    film[60:, :] = np.random.default_rng(0).random((40, 100))
    top, bottom, left, right = content_box(film)
    assert top == 25 and bottom == 100 and (left, right) == (0, 100)


def test_equalize_depends_only_on_the_order_of_grey_levels():
    film = torch.from_numpy(_film())[None, None]
    reference = equalize(film)
    for rendering in (film**0.8, film**1.25, 0.2 + 0.05 * film, film * 4095 / 65535):
        # Up to the 1024 bins: a bin holds under 1% of the pixels here.
        assert torch.allclose(equalize(rendering), reference, atol=5e-3)
    assert float(reference.min()) > 0.0 and float(reference.max()) < 1.0
    assert abs(float(reference.mean()) - 0.5) < 0.01  # uniform levels


def test_equalize_gives_tied_pixels_one_level():
    flat = torch.zeros(1, 1, 8, 8)
    flat[..., :4] = 1.0
    out = equalize(flat)
    assert torch.unique(out).tolist() == pytest.approx([0.25, 0.75])


def test_lung_box_grows_the_mask_box_by_the_margin_and_maps_it_to_the_film():
    mask = np.zeros((32, 32), dtype=bool)
    mask[8:24, 4:28] = True  # 16 x 24 at the mask's scale
    # The mask covers the content box (10..74, 20..84) of a bigger film: scale 2.
    box = lung_box(mask, (10, 74, 20, 84), margin=0.25)
    assert box == (10 + 8, 10 + 56, 20 + 0, 20 + 64)


def test_lung_box_falls_back_to_the_content_box_on_an_empty_or_tiny_mask():
    within = (3, 40, 2, 50)
    assert lung_box(np.zeros((16, 16), dtype=bool), within) == within
    speck = np.zeros((32, 32), dtype=bool)
    speck[5, 5] = True
    assert lung_box(speck, within) == within


def test_scale_box_and_paste_put_a_crop_back_in_place():
    box = scale_box((10, 50, 20, 60), (100, 100), (50, 50))
    assert box == (5, 25, 10, 30)
    canvas = paste(np.ones((20, 20), dtype=np.float32), box, (50, 50))
    assert canvas.sum() == 400 and canvas[5:25, 10:30].all()


def test_model_input_is_the_same_for_a_film_and_its_rendering_when_equalized():
    # A smooth film (resizing noise would reorder its grey levels): a blob on a gradient.
    y, x = np.mgrid[0:90, 0:70] / 90.0
    film = (0.3 * x + 0.6 * np.exp(-((y - 0.5) ** 2 + (x - 0.4) ** 2) * 8)).astype(np.float32)
    framed = np.pad(film**1.25, 8)
    kwargs = {"size": 32, "intensity": "equalize", "mean": [0.5] * 3, "std": [0.25] * 3}
    a = model_input([film], [content_box(film)], **kwargs)
    b = model_input([framed], [content_box(framed)], **kwargs)
    assert torch.allclose(a, b, atol=0.05)  # normalized units: 1.25% of the grey range
    with pytest.raises(ValueError, match="intensity"):
        model_input([film], [full_box(film.shape)], **{**kwargs, "intensity": "clahe"})


def _variant(path, tmp_path, **changes):
    meta, members = load_bundle_members(path)
    out = tmp_path / "variant.safetensors"
    segmenter = load_segmenter(path)
    save_bundle(out, members, replace(meta, segmenter={}, **changes), segmenter=segmenter)
    return out


def test_metadata_refuses_unknown_normalisations_and_a_lung_crop_without_segmenter():
    base = {"classes": ["a", "b"], "members": [{"name": "m", "arch": "mobilenet_v2"}]}
    base["format_version"] = 1
    assert BundleMetadata.from_dict(base).crop == "none"  # bundles before issue 14
    for bad, message in (
        ({"intensity": "clahe"}, "intensity"),
        ({"crop": "heart"}, "crop"),
        ({"crop": "lungs"}, "segmenter"),
    ):
        with pytest.raises(BundleError, match=message):
            BundleMetadata.from_dict({**base, **bad})


def test_lung_crop_predictor_keeps_the_cam_inside_the_box_it_saw(
    tiny_bundle_with_lungs, sample_images, tmp_path
):
    path = _variant(tiny_bundle_with_lungs, tmp_path, crop="lungs", intensity="equalize")
    predictor = load_bundle(path, lungs=False)  # the crop needs the segmenter regardless
    assert predictor.segmenter is not None
    film = np.asarray(Image.open(sample_images[0]).convert("L"))
    framed = np.pad(film, 40)
    (result,) = predictor.predict([framed], cam=True)
    assert result.fused_heatmap.shape == framed.shape
    assert result.lung_mask.shape == framed.shape
    # Nothing outside the film's content: the black frame got no heat and no lung.
    assert result.fused_heatmap[:40].max() == 0.0 and result.fused_heatmap[:, :40].max() == 0.0
    assert not result.lung_mask[:40].any()
    inside = result.fused_heatmap > 0
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    top, bottom, left, right = lung_box(
        result.lung_mask[40:-40, 40:-40], (40, 40 + film.shape[0], 40, 40 + film.shape[1])
    )
    assert rows[0] >= top - 1 and rows[-1] <= bottom and cols[0] >= left - 1 and cols[-1] <= right
    assert result.cam_lung_fraction is not None


def test_lung_crop_bundle_without_its_segmenter_is_refused(tiny_bundle, tmp_path):
    meta, _members = load_bundle_members(tiny_bundle)
    from classifier.predictor import Predictor

    changed = BundleMetadata.from_dict(
        {**asdict(replace(meta, crop="lungs")), "segmenter": {"arch": "unet"}}
    )
    with pytest.raises(BundleError, match="segmenter"):
        Predictor(changed, [], device=torch.device("cpu"))


def test_old_bundles_see_the_whole_film_as_before(tiny_bundle, sample_images):
    predictor = load_bundle(tiny_bundle)
    film = to_gray_array(Image.open(sample_images[0]))
    framed = np.pad(film, 20)
    (result,) = predictor.predict([framed], cam=True)
    assert result.fused_heatmap[:20].max() > 0.0  # no crop: the frame is part of the input


def test_test_time_zooms_average_each_members_probabilities(tiny_bundle, sample_images):
    images = [Image.open(p) for p in sample_images[:3]]
    plain = load_bundle(tiny_bundle).predict(images, cam=False)
    zoomed = load_bundle(tiny_bundle, tta=(0.9, 1.1)).predict(images, cam=True)
    for a, b in zip(plain, zoomed, strict=True):
        assert sum(b.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert a.probabilities != b.probabilities  # the zoomed views changed the vote
        assert b.fused_heatmap is not None
    assert load_bundle(tiny_bundle, tta=(1.0,)).predict(images[:1], cam=False)[
        0
    ].probabilities == pytest.approx(plain[0].probabilities, abs=5e-3)  # zoom 1: the input
