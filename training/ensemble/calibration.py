"""Fitted on the validation split: member temperatures, member weights, ensemble temperature,
and a covid19 decision threshold that favours sensitivity."""

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from training.evaluation.metrics import classification_report


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the NLL of softmax(logits / T) (Guo et al., 2017)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    target = torch.as_tensor(y, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), target)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): temperature scaling applied to probabilities (e.g. an ensemble's)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_member_weights(
    member_probs: list[np.ndarray], y: np.ndarray, classes: list[str], steps: int = 10
) -> list[float]:
    """Soft-voting weights on a simplex grid, maximising validation macro AUC (then NLL)."""
    if len(member_probs) == 1:
        return [1.0]
    grid = [
        w for w in itertools.product(range(steps + 1), repeat=len(member_probs)) if sum(w) == steps
    ]
    best, best_key = None, None
    for weights in grid:
        probs = sum(p * (w / steps) for p, w in zip(member_probs, weights, strict=True))
        auc = classification_report(y, probs, classes, n_boot=0)["macro_auc"] or 0.0
        nll = -np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)))
        key = (round(auc, 4), -nll)
        if best_key is None or key > best_key:
            best, best_key = weights, key
    return [w / steps for w in best]


def fit_threshold(
    probs: np.ndarray, y: np.ndarray, k: int, sensitivity: float, min_specificity: float = 0.95
) -> float | None:
    """A threshold on p(class k): the highest one reaching ``sensitivity`` on these data, unless
    that drops specificity below ``min_specificity``; then the lowest one that keeps it (the
    most sensitive operating point with at most 1 - min_specificity false alarms)."""
    score = probs[:, k]
    positive = y == k
    if not positive.any() or positive.all():
        return None
    candidates = np.unique(score)
    sens = np.array([(score[positive] >= t).mean() for t in candidates])
    spec = np.array([(score[~positive] < t).mean() for t in candidates])
    allowed = spec >= min_specificity
    if not allowed.any():
        return None
    reaching = allowed & (sens >= sensitivity)
    if reaching.any():
        return float(candidates[reaching].max())
    return float(candidates[allowed].min())
