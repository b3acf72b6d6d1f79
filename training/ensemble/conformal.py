"""Fitting and measuring conformal prediction sets (classifier.conformal applies them).

Split conformal: on a calibration split the model never fitted its weights on, the LAC score
1 - p(true class) of every film; the threshold at level 1 - alpha is the ceil((n + 1)(1 -
alpha))-th smallest score (Angelopoulos & Bates, "A gentle introduction to conformal
prediction", 2021, section 1). For a Mondrian class the scores are its own films' only.
"""

import math
from collections import defaultdict

import numpy as np

from classifier.conformal import LEVELS, level_key
from training.evaluation.metrics import rate

MONDRIAN = ("covid19",)


def conformal_threshold(scores: np.ndarray, level: float) -> float:
    """The finite-sample split-conformal quantile of ``scores``; 1.0 (every class in the set)
    when there are too few scores to promise ``level``."""
    scores = np.sort(np.asarray(scores, dtype=float))
    n = len(scores)
    rank = math.ceil((n + 1) * level)
    if n == 0 or rank > n:
        return 1.0
    return float(scores[rank - 1])


def fit_conformal(
    probs: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    *,
    levels: tuple[float, ...] = LEVELS,
    mondrian: tuple[str, ...] = MONDRIAN,
    split: str = "val",
) -> dict:
    """The bundle's ``conformal`` entry from calibration probabilities ``probs`` (N x C) and
    their true class indices ``y``."""
    probs, y = np.asarray(probs, dtype=float), np.asarray(y)
    scores = 1.0 - probs[np.arange(len(y)), y]
    own = [c for c in mondrian if c in classes]
    shared = np.isin(y, [classes.index(c) for c in classes if c not in own])
    thresholds = {}
    for level in levels:
        marginal = conformal_threshold(scores[shared] if shared.any() else scores, level)
        per_class = dict.fromkeys(classes, marginal)
        for c in own:
            per_class[c] = conformal_threshold(scores[y == classes.index(c)], level)
        thresholds[level_key(level)] = per_class
    return {
        "method": "lac",
        "levels": [float(v) for v in levels],
        "mondrian": own,
        "thresholds": thresholds,
        "calibration": {
            "split": split,
            "n": len(y),
            "per_class": {c: int((y == i).sum()) for i, c in enumerate(classes)},
        },
    }


def coverage_table(
    sets: list[dict[str, list[str]]], labels: list[str], groups: dict[str, list[str]]
) -> dict:
    """Empirical coverage (true label in the set, Wilson interval) and mean set size per level,
    over all rows and per value of each grouping (e.g. {"class": labels, "source": sources}).
    Rows whose label is in no set's class list (partial labels) are left out."""
    keys = sorted({k for s in sets for k in s})
    table: dict = {}
    for key in keys:
        hits = np.array([label in s[key] for s, label in zip(sets, labels, strict=True)])
        sizes = np.array([len(s[key]) for s in sets], dtype=float)
        entry = {"all": {**rate(hits), "mean_size": _mean(sizes)}}
        for name, values in groups.items():
            rows: dict[str, list[int]] = defaultdict(list)
            for i, value in enumerate(values):
                rows[value].append(i)
            entry[name] = {
                value: {**rate(hits[idx]), "mean_size": _mean(sizes[idx])}
                for value, idx in sorted(rows.items())
            }
        table[key] = entry
    return table


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def records_coverage(records, sets: list[dict], classes: list[str]) -> dict:
    """``coverage_table`` of the films whose label is one of ``classes``, per class and
    source (partial labels such as tuberculosis have no place in a set)."""
    keep = [i for i, r in enumerate(records) if r.label in classes]
    labels = [records[i].label for i in keep]
    return coverage_table(
        [sets[i] for i in keep],
        labels,
        {"class": labels, "source": [records[i].source for i in keep]},
    )
