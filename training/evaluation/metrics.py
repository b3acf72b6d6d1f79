"""Classification metrics in the papers' format plus AUCs, calibration and bootstrap intervals."""

import itertools

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import confusion_matrix

COVID = "covid19"
# The keys of a classification report, in order (`python -m training evaluate --json` adds
# "per_source", "unscored_labels" and, where they apply, "lungs", "adult_non_covid" and
# "external").
REPORT_KEYS = (
    "n",
    "accuracy",
    "per_class",
    "macro_auc",
    "covid_vs_rest",
    "confusion_matrix",
    "ece",
)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """One-vs-rest ROC AUC as the Mann-Whitney statistic (ties count half): the same value as
    sklearn's roc_auc_score, cheap enough for a bootstrap."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_ci(
    positive: np.ndarray, score: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> list[float] | None:
    """95% percentile bootstrap interval of the one-vs-rest AUC (resampling images)."""
    if n_boot <= 0 or auc(positive, score) is None:
        return None
    rng = np.random.default_rng(seed)
    n = len(positive)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        value = auc(positive[idx], score[idx])
        if value is not None:
            values.append(value)
    if not values:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-class confidence, equal-width bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(ece)


def classification_report(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    *,
    y_pred: np.ndarray | None = None,
    n_boot: int = 1000,
) -> dict:
    """The evaluation report for integer labels and an NxC probability matrix.

    ``y_pred`` defaults to the argmax; pass the bundle's thresholded decisions to report them.
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = probs.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=int)
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    per_class, aucs = {}, []
    for k, name in enumerate(classes):
        tp = matrix[k, k]
        fn = matrix[k].sum() - tp
        fp = matrix[:, k].sum() - tp
        tn = matrix.sum() - tp - fn - fp
        positive = y_true == k
        value = auc(positive, probs[:, k])
        if value is not None:
            aucs.append(value)
        sensitivity, ppv = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
        per_class[name] = {
            "n": int(positive.sum()),
            "sensitivity": sensitivity,
            "specificity": _ratio(tn, tn + fp),
            "ppv": ppv,
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "auc": value,
            "auc_ci": auc_ci(positive, probs[:, k], n_boot=n_boot, seed=k),
        }
    return {
        "n": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else None,
        "per_class": per_class,
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "covid_vs_rest": _covid_vs_rest(y_true, y_pred, classes),
        "confusion_matrix": {"labels": list(classes), "matrix": matrix.tolist()},
        "ece": expected_calibration_error(probs, y_true) if len(y_true) else None,
    }


def _covid_vs_rest(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict | None:
    """The papers' 2-class table: covid19 against everything else."""
    if COVID not in classes:
        return None
    k = classes.index(COVID)
    truth, pred = y_true == k, y_pred == k
    return {
        "accuracy": float((truth == pred).mean()) if len(truth) else None,
        "sensitivity": _ratio((truth & pred).sum(), truth.sum()),
        "specificity": _ratio((~truth & ~pred).sum(), (~truth).sum()),
    }


def report_with_sources(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    sources: list[str],
    *,
    y_pred: np.ndarray | None = None,
    n_boot: int = 1000,
) -> dict:
    """The overall report plus the same report for each source (hospital/collection)."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = probs.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=int)
    report = classification_report(y_true, probs, classes, y_pred=y_pred, n_boot=n_boot)
    sources_arr = np.asarray(sources)
    report["per_source"] = {
        source: classification_report(
            y_true[mask], probs[mask], classes, y_pred=y_pred[mask], n_boot=n_boot
        )
        for source in sorted(set(sources))
        if (mask := sources_arr == source).any()
    }
    return report


def binary_aucs(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """Clinically paired questions: normal vs pneumonia, bacterial vs viral (among pneumonias)."""
    y_true = np.asarray(y_true, dtype=int)
    out: dict[str, float | None] = {}
    names = {"normal", "bacterial_pneumonia", "viral_pneumonia"}
    if names <= set(classes):
        normal = classes.index("normal")
        bac, vir = classes.index("bacterial_pneumonia"), classes.index("viral_pneumonia")
        pneumonia = np.isin(y_true, [bac, vir])
        keep = pneumonia | (y_true == normal)
        score = probs[:, bac] + probs[:, vir]
        out["normal_vs_pneumonia_auc"] = auc(pneumonia[keep], score[keep])
        among = pneumonia
        viral_share = probs[:, vir] / np.clip(probs[:, bac] + probs[:, vir], 1e-9, None)
        out["bacterial_vs_viral_auc"] = auc((y_true == vir)[among], viral_share[among])
    return out


def wilson_ci(successes: int, n: int, z: float = 1.959964) -> list[float] | None:
    """Wilson score 95% interval of a proportion (sound for small n and rates near 0 or 1)."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def rate(hits: np.ndarray) -> dict:
    """A proportion of booleans with its Wilson interval."""
    n, k = len(hits), int(np.sum(hits))
    return {"n": n, "k": k, "rate": _ratio(k, n), "ci": wilson_ci(k, n)}


def quartiles(values: list[float]) -> dict:
    """Median and quartiles of the values that are not None."""
    kept = np.array([v for v in values if v is not None], dtype=float)
    if not len(kept):
        return {"n": 0, "median": None, "q1": None, "q3": None}
    q1, median, q3 = np.percentile(kept, [25, 50, 75])
    return {"n": len(kept), "median": float(median), "q1": float(q1), "q3": float(q3)}


def grouped_quartiles(values: list[float | None], keys: list[str]) -> dict:
    return {
        key: quartiles([v for v, k in zip(values, keys, strict=True) if k == key])
        for key in sorted(set(keys))
    }
