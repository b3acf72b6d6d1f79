"""Classification metrics: accuracy, per-class sensitivity/specificity/PPV/AUC, confusion."""

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def classification_report(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """Metrics for integer labels ``y_true`` and an NxC probability matrix."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    per_class, aucs = {}, []
    for k, name in enumerate(classes):
        tp = matrix[k, k]
        fn = matrix[k].sum() - tp
        fp = matrix[:, k].sum() - tp
        tn = matrix.sum() - tp - fn - fp
        positives = y_true == k
        auc = None
        if 0 < positives.sum() < len(y_true):
            auc = float(roc_auc_score(positives, probs[:, k]))
            aucs.append(auc)
        per_class[name] = {
            "n": int(positives.sum()),
            "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp),
            "ppv": _ratio(tp, tp + fp),
            "auc": auc,
        }
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else None,
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "per_class": per_class,
        "confusion_matrix": {"labels": list(classes), "matrix": matrix.tolist()},
    }


def report_with_sources(
    y_true: np.ndarray, probs: np.ndarray, classes: list[str], sources: list[str]
) -> dict:
    """The overall report plus the same report for each source (hospital/collection)."""
    report = classification_report(y_true, probs, classes)
    sources_arr = np.asarray(sources)
    report["per_source"] = {
        source: classification_report(
            y_true[sources_arr == source], probs[sources_arr == source], classes
        )
        for source in sorted(set(sources))
    }
    return report
