"""PNG figures for an evaluation: confusion matrix, ROC curves, reliability diagram."""

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve


def write_plots(out: Path, y: np.ndarray, probs: np.ndarray, report: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    classes = report["confusion_matrix"]["labels"]
    paths = [out / "confusion_matrix.png", out / "roc.png", out / "reliability.png"]

    matrix = np.array(report["confusion_matrix"]["matrix"])
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > matrix.max() / 2 else "black",
        )
    ax.set_title(f"Confusion matrix (n={report['n']})")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    for k, name in enumerate(classes):
        positive = y == k
        if 0 < positive.sum() < len(y):
            fpr, tpr, _ = roc_curve(positive, probs[:, k])
            ax.plot(fpr, tpr, label=f"{name} (AUC {report['per_class'][name]['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", linewidth=1)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC, one class vs rest")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)

    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, 11)
    centers, accuracy = [], []
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            centers.append(confidence[in_bin].mean())
            accuracy.append(correct[in_bin].mean())
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", linewidth=1)
    ax.plot(centers, accuracy, "o-")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {report['ece']:.3f})")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=120)
    plt.close(fig)
    return paths
