"""Agreement statistics between the model and the radiologists' final labels (pure Python)."""

import math

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """95% Wilson score interval for a proportion; None when there is no denominator."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(matrix: list[list[int]]) -> float | None:
    """Cohen's kappa of a square confusion matrix; None when undefined (no data, or chance
    agreement of 1, i.e. both raters used a single class)."""
    n = sum(map(sum, matrix))
    if n == 0:
        return None
    observed = sum(matrix[i][i] for i in range(len(matrix))) / n
    rows = [sum(r) for r in matrix]
    cols = [sum(c) for c in zip(*matrix, strict=True)]
    expected = sum(r * c for r, c in zip(rows, cols, strict=True)) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def _rate(successes: int, n: int) -> dict:
    return {"value": successes / n if n else None, "ci": wilson(successes, n), "n": n}


def agreement_summary(labels: list[str], counts: dict[tuple[str, str], int]) -> dict:
    """From counts[(final_label, predicted_label)]: the confusion matrix (rows: radiologists'
    final label, columns: model), overall agreement with its CI, kappa, and per class the
    model's sensitivity, specificity and PPV against the radiologists, each with a 95% CI."""
    matrix = [[counts.get((t, p), 0) for p in labels] for t in labels]
    n = sum(map(sum, matrix))
    agree = sum(matrix[i][i] for i in range(len(labels)))
    per_class = {}
    for k, name in enumerate(labels):
        tp = matrix[k][k]
        positives = sum(matrix[k])
        predicted = sum(row[k] for row in matrix)
        tn = n - positives - predicted + tp
        per_class[name] = {
            "n": positives,
            "sensitivity": _rate(tp, positives),
            "specificity": _rate(tn, n - positives),
            "ppv": _rate(tp, predicted),
        }
    return {
        "n": n,
        "labels": labels,
        "matrix": matrix,
        "agreement": _rate(agree, n),
        "kappa": cohen_kappa(matrix),
        "per_class": per_class,
    }
