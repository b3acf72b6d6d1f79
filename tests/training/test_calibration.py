import numpy as np
import pytest
import torch

from classifier import DEFAULT_CLASSES
from classifier.ensemble import decide, temper
from training.ensemble.calibration import fit_member_weights, fit_temperature, fit_threshold, soften
from training.evaluation.metrics import (
    REPORT_KEYS,
    binary_aucs,
    classification_report,
    expected_calibration_error,
)

CLASSES = list(DEFAULT_CLASSES)


def _labels_from(logits: np.ndarray, seed: int = 0) -> np.ndarray:
    probs = torch.from_numpy(logits).softmax(1).numpy()
    rng = np.random.default_rng(seed)
    return np.array([rng.choice(len(p), p=p) for p in probs])


def test_temperature_scaling_recovers_an_overconfident_models_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 4))
    y = _labels_from(logits)
    fitted = fit_temperature(logits * 3.0, y)  # three times too confident
    assert fitted == pytest.approx(3.0, rel=0.1)
    before = torch.from_numpy(logits * 3.0).softmax(1).numpy()
    after = torch.from_numpy(logits * 3.0 / fitted).softmax(1).numpy()
    assert expected_calibration_error(after, y) < expected_calibration_error(before, y) / 2


def test_soften_matches_temper_and_keeps_rows_normalised():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    ours = soften(probs, 2.0)
    assert np.allclose(ours.sum(1), 1.0)
    assert np.allclose(ours, temper(torch.from_numpy(probs), 2.0).numpy())
    assert ours[0, 0] < 0.7  # a temperature above 1 softens


def test_member_weights_favour_the_member_that_carries_the_signal():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    good = np.full((400, 4), 0.1)
    good[np.arange(400), y] = 0.7
    noise = rng.dirichlet(np.ones(4), 400)
    weights = fit_member_weights([noise, good], y, CLASSES)
    assert weights[1] > weights[0] and sum(weights) == pytest.approx(1.0)


def test_threshold_reaches_the_asked_sensitivity_and_decide_applies_it():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 500)
    probs = rng.dirichlet(np.ones(4), 500)
    probs[y == 0, 0] += 0.2
    probs /= probs.sum(1, keepdims=True)
    threshold = fit_threshold(probs, y, 0, 0.95, min_specificity=0.0)
    assert ((probs[y == 0, 0] >= threshold).mean()) >= 0.95
    predicted = decide(torch.from_numpy(probs), CLASSES, {"covid19": threshold}).numpy()
    assert (predicted[y == 0] == 0).mean() >= 0.95
    assert (predicted == 0).sum() >= (probs.argmax(1) == 0).sum()


def test_report_has_exactly_the_evaluation_keys_and_bootstrap_intervals():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    probs = rng.dirichlet(np.ones(4), 200)
    probs[np.arange(200), y] += 1.0
    probs /= probs.sum(1, keepdims=True)
    report = classification_report(y, probs, CLASSES, n_boot=200)
    assert list(report) == [*REPORT_KEYS]
    covid = report["per_class"]["covid19"]
    assert set(covid) == {"n", "sensitivity", "specificity", "ppv", "f1", "auc", "auc_ci"}
    low, high = covid["auc_ci"]
    assert low <= covid["auc"] <= high
    assert set(report["covid_vs_rest"]) == {"accuracy", "sensitivity", "specificity"}
    assert report["covid_vs_rest"]["sensitivity"] == covid["sensitivity"]
    pairs = binary_aucs(y, probs, CLASSES)
    assert 0.5 < pairs["normal_vs_pneumonia_auc"] <= 1.0
    assert 0.5 < pairs["bacterial_vs_viral_auc"] <= 1.0


def test_rank_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    from training.evaluation.metrics import auc

    rng = np.random.default_rng(4)
    positive = rng.random(300) < 0.3
    score = np.round(rng.random(300) + positive * 0.3, 1)  # many ties
    assert auc(positive, score) == pytest.approx(roc_auc_score(positive, score))


def test_threshold_never_buys_sensitivity_below_the_specificity_floor():
    y = np.array([0] * 10 + [1] * 90)
    probs = np.zeros((100, 2))
    probs[:, 0] = np.r_[np.linspace(0.3, 0.9, 10), np.linspace(0.0, 0.6, 90)]
    probs[:, 1] = 1 - probs[:, 0]
    threshold = fit_threshold(probs, y, 0, 0.95, min_specificity=0.95)
    specificity = (probs[y == 1, 0] < threshold).mean()
    assert specificity >= 0.95
    sensitivity = (probs[y == 0, 0] >= threshold).mean()
    assert 0 < sensitivity < 0.95  # the floor wins over the sensitivity target
