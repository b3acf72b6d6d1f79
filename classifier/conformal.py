"""Conformal prediction sets: the classes a model cannot rule out, at a stated coverage.

Split conformal with the LAC score s = 1 - p(y) (Sadinle, Lei & Wasserman, JASA 2019): a class
is in the set when its score is within that class's threshold. The thresholds are fitted on a
calibration split (training.conformal); a class named "Mondrian" gets its own threshold from
its own calibration films, so that its coverage holds for that class alone (Vovk 2012), and
the others share one marginal threshold. The bundle stores them under ``conformal``:

    {"method": "lac", "levels": [0.9, 0.95], "mondrian": ["covid19"],
     "thresholds": {"0.90": {"covid19": 0.81, "normal": 0.62, ...}, "0.95": {...}},
     "calibration": {...}}
"""

import numpy as np

LEVELS = (0.90, 0.95)
# The level the product shows first (the review page, the worklist's sort, the SR's first set).
DISPLAY_LEVEL = 0.90


def level_key(level: float) -> str:
    return f"{float(level):.2f}"


def conformal_problem(conformal: dict, classes: list[str]) -> str | None:
    """What is wrong with a bundle's ``conformal`` entry, or None ({} means: none)."""
    if not conformal:
        return None
    thresholds = conformal.get("thresholds")
    if not isinstance(thresholds, dict) or not thresholds:
        return "conformal entry without thresholds"
    for key, per_class in thresholds.items():
        if not isinstance(per_class, dict) or set(per_class) != set(classes):
            return f"conformal thresholds at {key} must name every class exactly once"
        bad = [c for c, q in per_class.items() if not isinstance(q, int | float) or not 0 <= q <= 1]
        if bad:
            return f"conformal thresholds at {key} outside [0, 1]: {sorted(bad)}"
    return None


def prediction_sets(
    probs: np.ndarray, classes: list[str], conformal: dict
) -> list[dict[str, list[str]]]:
    """Per row of ``probs`` (N x C): level key -> the classes in the set, most probable first.

    A set never comes out empty: when every class is ruled out (LAC can do that on a film
    unlike all of them) the most probable class stands alone, which only adds coverage."""
    thresholds = conformal.get("thresholds") or {}
    if not thresholds:
        return [{} for _ in range(len(probs))]
    probs = np.asarray(probs, dtype=float)
    order = np.argsort(-probs, axis=1, kind="stable")
    out: list[dict[str, list[str]]] = []
    for row, ranked in zip(probs, order, strict=True):
        sets = {}
        for key, per_class in sorted(thresholds.items()):
            kept = [classes[i] for i in ranked if 1.0 - row[i] <= per_class[classes[i]]]
            sets[key] = kept or [classes[ranked[0]]]
        out.append(sets)
    return out
