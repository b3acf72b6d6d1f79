import numpy as np

from classifier import DEFAULT_CLASSES
from classifier.conformal import prediction_sets
from training.ensemble.conformal import conformal_threshold, coverage_table, fit_conformal

CLASSES = list(DEFAULT_CLASSES)


def test_the_threshold_is_the_finite_sample_rank_of_the_scores():
    scores = np.arange(1, 20) / 20  # 19 scores
    # ceil((19 + 1) * 0.9) = 18th smallest
    assert conformal_threshold(scores, 0.9) == scores[17]
    # ceil(20 * 0.95) = 19th: the largest
    assert conformal_threshold(scores, 0.95) == scores[18]


def test_too_few_scores_to_promise_the_level_admit_every_class():
    assert conformal_threshold(np.array([0.1, 0.2, 0.3]), 0.9) == 1.0
    assert conformal_threshold(np.array([]), 0.9) == 1.0


def _data(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, y


def test_sets_fitted_on_calibration_data_cover_new_data_at_the_level():
    probs, y = _data(2000, 0)
    conformal = fit_conformal(probs, y, CLASSES)
    test_probs, test_y = _data(4000, 1)
    sets = prediction_sets(test_probs, CLASSES, conformal)
    table = coverage_table(
        sets, [CLASSES[i] for i in test_y], {"class": [CLASSES[i] for i in test_y]}
    )
    for key, level in (("0.90", 0.90), ("0.95", 0.95)):
        assert abs(table[key]["all"]["rate"] - level) < 0.02
        # Mondrian: covid19's own coverage holds, not only the average's.
        assert table[key]["class"]["covid19"]["rate"] >= level - 0.02
        assert 1 < table[key]["all"]["mean_size"] < 4


def test_covid19_gets_a_threshold_of_its_own_films_the_others_share_one():
    probs, y = _data(400, 2)
    probs[y == 0] = np.array([0.4, 0.2, 0.2, 0.2])  # covid19 films: always 1 - p = 0.6
    conformal = fit_conformal(probs, y, CLASSES)
    per_class = conformal["thresholds"]["0.90"]
    assert per_class["covid19"] == 0.6
    assert len({per_class[c] for c in CLASSES[1:]}) == 1
    assert conformal["mondrian"] == ["covid19"]
    assert conformal["calibration"]["n"] == 400


def test_coverage_is_counted_per_group_with_intervals():
    sets = [{"0.90": ["covid19"]}, {"0.90": ["normal", "covid19"]}, {"0.90": ["normal"]}]
    table = coverage_table(sets, ["covid19", "covid19", "covid19"], {"source": ["a", "a", "b"]})
    assert table["0.90"]["all"]["k"] == 2 and table["0.90"]["all"]["n"] == 3
    assert table["0.90"]["source"]["a"]["rate"] == 1.0
    assert table["0.90"]["source"]["b"]["rate"] == 0.0
    assert table["0.90"]["all"]["mean_size"] == 4 / 3
    assert table["0.90"]["all"]["ci"][0] < 2 / 3 < table["0.90"]["all"]["ci"][1]
