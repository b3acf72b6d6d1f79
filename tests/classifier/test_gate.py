"""The "not assessable" gate's layers, one by one, and the gate inside a bundle."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from classifier import load_bundle
from classifier.bundle import Gate, load_bundle_members, load_gate, load_segmenter, save_bundle
from classifier.errors import BundleError
from classifier.gate import (
    KIND_WORDS,
    UNLIKE_TRAINING,
    GateSpec,
    Limits,
    assess,
    gate_net,
    image_checks,
    lung_stats,
)
from classifier.preprocess import to_gray_array
from training.gate.train import fit_distance

LIMITS = Limits()


def _checks(image):
    return image_checks(image, to_gray_array(image), LIMITS)


def test_real_frontal_films_pass_every_deterministic_check(sample_images):
    for path in sample_images:
        reasons, scores = _checks(Image.open(path))
        assert reasons == [], (path.name, scores)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (Image.new("RGB", (300, 300), (200, 30, 30)), "colour"),
        (Image.new("L", (300, 300), 128), "near-constant"),
        (np.full((300, 300), 40000, dtype=np.uint16), "near-constant"),
        (Image.new("L", (1200, 300)).point(lambda _: 0).resize((1200, 300)), "aspect"),
    ],
)
def test_each_deterministic_check_names_what_it_found(image, words):
    reasons, _ = _checks(image)
    assert any(words in r for r in reasons), reasons


def test_a_grey_film_saved_as_rgb_and_a_12_bit_film_in_16_bit_pixels_pass(sample_images):
    film = Image.open(sample_images[0]).convert("L")
    assert _checks(film.convert("RGB"))[0] == []
    twelve_bit = (np.asarray(film, dtype=np.uint16) * 16).astype(np.uint16)
    assert _checks(twelve_bit)[0] == []


def test_a_colour_photograph_is_refused_even_when_its_grey_levels_look_like_a_film(sample_images):
    film = np.asarray(Image.open(sample_images[0]).convert("L"), dtype=np.uint8)
    tinted = np.stack([film, (film * 0.6).astype(np.uint8), (film * 0.3).astype(np.uint8)], -1)
    assert any("colour" in r for r in _checks(tinted)[0])


def _spec(**changes) -> GateSpec:
    thresholds = {
        "min_frontal": 0.5,
        "max_distance": 10.0,
        "min_lung_side": 0.1,
        "min_lung_area": 0.1,
        "max_lung_area": 0.5,
        "min_lung_balance": 0.5,
    }
    return replace(GateSpec(), **(thresholds | changes))


LUNGS_OK = {"lung_area": 0.3, "lung_left": 0.3, "lung_right": 0.3}


def test_assess_keeps_a_film_every_layer_keeps_and_records_their_scores():
    probs = np.array([0.9, 0.05, 0.02, 0.02, 0.01])
    result = assess(_spec(), checks=[], scores={}, kind_probs=probs, distance=3.0, lungs=LUNGS_OK)
    assert result.assessable and result.reasons == []
    assert result.scores["p_frontal_cxr"] == 0.9 and result.scores["feature_distance"] == 3.0
    assert result.to_dict()["scores"]["lung_area"] == 0.3


def test_the_network_refuses_with_the_words_of_its_most_likely_other_kind():
    probs = np.array([0.1, 0.05, 0.05, 0.75, 0.05])
    result = assess(_spec(), checks=[], scores={}, kind_probs=probs, distance=3.0, lungs=LUNGS_OK)
    assert not result.assessable
    assert result.reasons == [KIND_WORDS["other_modality"]]
    assert "CT slice" in result.reasons[0]


def test_the_feature_distance_refuses_what_is_unlike_the_training_films():
    probs = np.array([0.9, 0.05, 0.02, 0.02, 0.01])
    result = assess(_spec(), checks=[], scores={}, kind_probs=probs, distance=50.0, lungs=LUNGS_OK)
    assert result.reasons == [UNLIKE_TRAINING]


@pytest.mark.parametrize(
    ("lungs", "words"),
    [
        ({"lung_area": 0.15, "lung_left": 0.3, "lung_right": 0.0}, "both lungs"),
        ({"lung_area": 0.2, "lung_left": 0.3, "lung_right": 0.12, "lung_balance": 0.4}, "both"),
        ({"lung_area": 0.02, "lung_left": 0.2, "lung_right": 0.2}, "too little lung"),
        ({"lung_area": 0.9, "lung_left": 0.9, "lung_right": 0.9}, "implausibly large"),
    ],
)
def test_the_lung_field_check_refuses_one_lung_or_an_implausible_area(lungs, words):
    probs = np.array([0.9, 0.05, 0.02, 0.02, 0.01])
    result = assess(_spec(), checks=[], scores={}, kind_probs=probs, distance=1.0, lungs=lungs)
    assert not result.assessable and words in result.reasons[0]


def test_lung_stats_measure_each_half_of_the_image():
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:8, 2:8] = True  # only the left half has lung
    stats = lung_stats(mask)
    assert stats["lung_right"] == 0.0 and stats["lung_left"] == pytest.approx(36 / 100)
    assert stats["lung_area"] == pytest.approx(36 / 200) and stats["lung_balance"] == 0.0


def test_deterministic_reasons_come_first_and_without_a_gate_nothing_else_votes():
    result = assess(
        GateSpec(),
        checks=["a near-constant image"],
        scores={},
        kind_probs=None,
        distance=None,
        lungs=None,
    )
    assert result.reasons == ["a near-constant image"] and not result.assessable


def test_feature_distance_is_mahalanobis_under_a_shrunk_covariance():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, 12)) * np.linspace(0.2, 3.0, 12)
    distance = fit_distance(train.astype(np.float32), rank=11)
    near, far = train[:50], train[:50] + 8.0
    with torch.no_grad():
        d_near = distance(torch.as_tensor(near, dtype=torch.float32)).numpy()
        d_far = distance(torch.as_tensor(far, dtype=torch.float32)).numpy()
    assert d_far.min() > d_near.max()
    # Along the full rank it equals the exact Mahalanobis distance under the shrunk covariance.
    cov = np.diag(distance.scale.numpy().astype(np.float64))
    basis = distance.basis.numpy().astype(np.float64)
    centred = near - distance.mean.numpy()
    tail = float(distance.tail)
    full = basis @ cov @ basis.T + tail * (np.eye(12) - basis @ basis.T)
    exact = np.einsum("ij,jk,ik->i", centred, np.linalg.inv(full), centred)
    assert np.allclose(d_near, exact, rtol=1e-3)


def _gated(bundle, tmp_path, spec: GateSpec) -> tuple:
    torch.manual_seed(0)
    meta, members = load_bundle_members(bundle)
    net = gate_net(spec).eval()
    predictor = load_bundle(bundle, device="cpu", gate=False)
    films = [np.linspace(0, 1, 64 * 64).reshape(64, 64) for _ in range(3)]
    features = np.stack([r.features for r in predictor.predict(films, cam=False, features=True)])
    noise = np.random.default_rng(0).normal(size=(40, features.shape[1])) * 0.01
    distance = fit_distance((features[:1] + noise).astype(np.float32), rank=8)
    gate = Gate(spec, net, distance)
    path = tmp_path / "gated.safetensors"
    save_bundle(path, members, meta, segmenter=load_segmenter(bundle), gate=gate)
    return path, gate


def test_a_gate_saved_in_a_bundle_loads_with_the_same_weights_and_thresholds(
    tiny_bundle_with_lungs, tmp_path
):
    path, gate = _gated(tiny_bundle_with_lungs, tmp_path, _spec(min_frontal=0.0))
    loaded = load_gate(path)
    assert loaded.spec == gate.spec
    for key, value in gate.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value), key
    assert torch.equal(loaded.distance.basis, gate.distance.basis)
    assert load_gate(tiny_bundle_with_lungs) is None


def test_the_predictor_assesses_every_image_with_every_layer_of_its_bundles_gate(
    tiny_bundle_with_lungs, tmp_path, sample_images
):
    path, _ = _gated(tiny_bundle_with_lungs, tmp_path, _spec(min_frontal=0.0, max_distance=1e9))
    predictor = load_bundle(path, device="cpu")
    images = [Image.open(sample_images[0]), Image.new("L", (200, 200), 90)]
    film, blank = predictor.predict(images, cam=False)
    for result in (film, blank):
        assert {"p_frontal_cxr", "feature_distance", "lung_area", "aspect"} <= set(
            result.assessment.scores
        )
    assert "a near-constant image" in blank.assessment.reasons
    # The model's output is still there for the audit.
    assert blank.label and set(blank.probabilities) == set(predictor.classes)


def test_a_bundle_without_a_gate_still_runs_the_deterministic_checks(tiny_bundle):
    predictor = load_bundle(tiny_bundle, device="cpu")
    (result,) = predictor.predict([Image.new("RGB", (100, 100), (0, 200, 0))], cam=False)
    assert not result.assessment.assessable
    assert result.assessment.reasons == [
        "a colour image (X-rays are grey)",
        "a near-constant image",
    ]


def test_metadata_that_names_a_gate_without_its_weights_is_refused(tiny_bundle, tmp_path):
    meta, members = load_bundle_members(tiny_bundle)
    with pytest.raises(BundleError, match="gate"):
        save_bundle(tmp_path / "x.safetensors", members, replace(meta, gate={"kinds": []}))


def test_a_gate_whose_first_kind_is_not_frontal_is_refused():
    with pytest.raises(BundleError, match="frontal"):
        GateSpec.from_dict({"kinds": ["lateral_cxr", "frontal_cxr"]})
