"""The drift monitor's reference (training.gate.reference): what it holds, and that writing it
into a bundle leaves the weights as they were."""

import numpy as np
import pytest
from safetensors.torch import load_file

from classifier import DEFAULT_BUNDLE, read_metadata
from training.gate.reference import drift_reference, reference_write

CLASSES = ["covid19", "bacterial_pneumonia", "viral_pneumonia", "normal"]


def test_the_reference_holds_quantiles_the_validation_share_mix_confidence_and_agreement():
    train = np.arange(1, 101, dtype=float)  # 1..100: the 95th percentile is 95.05
    val = np.array([50.0] * 30 + [99.0] * 10)  # 10 of 40 beyond it
    labels = ["normal"] * 20 + ["covid19"] * 20
    truth = ["normal"] * 20 + ["covid19"] * 10 + ["normal"] * 5 + ["tuberculosis"] * 5
    ref = drift_reference(
        train_distance=train,
        val_distance=val,
        val_labels=labels,
        val_confidence=np.full(40, 0.7),
        val_truth=truth,
        classes=CLASSES,
    )
    assert ref["films"] == {"train": 100, "val": 40}
    assert ref["distance_p95"] == pytest.approx(95.05)
    assert len(ref["distance_quantiles"]) == len(ref["val_distance_quantiles"]) == 101
    assert ref["distance_quantiles"][0] == 1.0 and ref["distance_quantiles"][-1] == 100.0
    assert ref["val_beyond_p95"] == 0.25
    assert ref["val_mix"] == {
        "covid19": 0.5,
        "bacterial_pneumonia": 0.0,
        "viral_pneumonia": 0.0,
        "normal": 0.5,
    }
    assert ref["val_confidence"] == pytest.approx(0.7)
    # Agreement over the films whose label is one of the classes (35): 30 agree.
    assert ref["val_agreement_films"] == 35
    assert ref["val_agreement"] == pytest.approx(30 / 35, abs=1e-4)


def test_too_few_films_make_no_reference():
    with pytest.raises(ValueError, match="at least 20"):
        drift_reference(
            train_distance=np.ones(100),
            val_distance=np.ones(10),
            val_labels=["normal"] * 10,
            val_confidence=np.ones(10),
            val_truth=["normal"] * 10,
            classes=CLASSES,
        )


def test_writing_the_reference_keeps_every_weight_and_the_rest_of_the_metadata(tmp_path):
    reference = {"films": {"train": 1, "val": 1}, "distance_p95": 1.0}
    out = tmp_path / "bundle.safetensors"
    reference_write(DEFAULT_BUNDLE, reference, out)
    before, after = read_metadata(DEFAULT_BUNDLE), read_metadata(out)
    assert after.gate["reference"] == reference
    assert {k: v for k, v in after.gate.items() if k != "reference"} == {
        k: v for k, v in before.gate.items() if k != "reference"
    }
    assert after.metrics == before.metrics and after.training == before.training
    old, new = load_file(DEFAULT_BUNDLE), load_file(out)
    assert old.keys() == new.keys()
    assert all(bool((old[k] == new[k]).all()) for k in old)


def test_the_card_states_the_shipped_bundles_reference():
    from training.evaluation.card import model_card

    card = model_card(DEFAULT_BUNDLE)
    assert "**Drift monitor's reference**" in card
    assert "95th percentile 2051 (1439 films); the validation films (330): 21% beyond it" in card
