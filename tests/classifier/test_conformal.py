import numpy as np
import pytest

from classifier import DEFAULT_CLASSES
from classifier.conformal import conformal_problem, level_key, prediction_sets
from classifier.errors import BundleError
from classifier.metadata import BundleMetadata, MemberSpec

CLASSES = list(DEFAULT_CLASSES)
CONFORMAL = {
    "thresholds": {
        "0.90": {"covid19": 0.9, "bacterial_pneumonia": 0.6, "viral_pneumonia": 0.6, "normal": 0.6},
        "0.95": {
            "covid19": 0.95,
            "bacterial_pneumonia": 0.8,
            "viral_pneumonia": 0.8,
            "normal": 0.8,
        },
    }
}


def test_a_set_holds_the_classes_within_their_threshold_most_probable_first():
    probs = np.array([[0.15, 0.05, 0.3, 0.5], [0.02, 0.9, 0.05, 0.03]])
    sets = prediction_sets(probs, CLASSES, CONFORMAL)
    # 1 - p: covid19 0.85 <= 0.9 (its own, Mondrian, threshold); viral 0.7 > 0.6 at 90%.
    assert sets[0]["0.90"] == ["normal", "covid19"]
    assert sets[0]["0.95"] == ["normal", "viral_pneumonia", "covid19"]
    assert sets[1] == {"0.90": ["bacterial_pneumonia"], "0.95": ["bacterial_pneumonia"]}


def test_a_set_is_never_empty_the_most_probable_class_stands_alone():
    tight = {"thresholds": {"0.90": dict.fromkeys(CLASSES, 0.1)}}
    (sets,) = prediction_sets(np.array([[0.3, 0.2, 0.1, 0.4]]), CLASSES, tight)
    assert sets == {"0.90": ["normal"]}


def test_a_bundle_without_thresholds_gives_no_sets():
    assert prediction_sets(np.full((2, 4), 0.25), CLASSES, {}) == [{}, {}]


def test_level_keys_have_two_decimals():
    assert level_key(0.9) == "0.90" and level_key(0.95) == "0.95"


@pytest.mark.parametrize(
    ("conformal", "problem"),
    [
        ({"thresholds": {}}, "without thresholds"),
        ({"thresholds": {"0.90": {"covid19": 0.5}}}, "every class"),
        ({"thresholds": {"0.90": dict.fromkeys(CLASSES, 1.5)}}, "outside [0, 1]"),
    ],
)
def test_bundle_metadata_refuses_malformed_conformal_thresholds(conformal, problem):
    assert problem in conformal_problem(conformal, CLASSES)
    meta = BundleMetadata(classes=CLASSES, members=[MemberSpec("m", "mobilenet_v2")])
    data = {**__import__("json").loads(meta.to_json()), "conformal": conformal}
    with pytest.raises(BundleError, match="conformal"):
        BundleMetadata.from_dict(data)


def test_the_predictor_gives_each_film_its_sets(tiny_bundle, sample_images, tmp_path):
    from classifier import load_bundle
    from tests.conftest import bundle_with
    from training.data.datasets import load_gray

    path = bundle_with(tiny_bundle, tmp_path / "with-sets.safetensors", conformal=CONFORMAL)
    predictor = load_bundle(path, device="cpu")
    results = predictor.predict([load_gray(p) for p in sample_images[:3]], cam=False)
    for result in results:
        probs = np.array([[result.probabilities[c] for c in CLASSES]])
        assert result.prediction_sets == prediction_sets(probs, CLASSES, CONFORMAL)[0]
        assert set(result.prediction_sets) == {"0.90", "0.95"}
    plain = load_bundle(tiny_bundle, device="cpu").predict([load_gray(sample_images[0])])
    assert plain[0].prediction_sets == {}
