"""Evaluate a bundle on any manifest, through the same Predictor the worker uses (including the
bundle's calibration and decision thresholds)."""

from pathlib import Path

import numpy as np

from classifier import load_bundle
from training.data import Record, load_gray
from training.metrics import report_with_sources


def predict_records(bundle, records: list[Record], *, device=None, batch_size: int = 16):
    predictor = load_bundle(bundle, device=device, batch_size=batch_size)
    classes = predictor.classes
    unknown = {r.label for r in records} - set(classes)
    if unknown:
        raise ValueError(f"manifest labels not in the bundle's classes: {sorted(unknown)}")
    probs, predicted = [], []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        for result in predictor.predict([load_gray(r.path) for r in chunk], cam=False):
            probs.append([result.probabilities[c] for c in classes])
            predicted.append(classes.index(result.label))
    y = np.array([classes.index(r.label) for r in records])
    return classes, y, np.array(probs), np.array(predicted)


def evaluate_bundle(
    bundle, records: list[Record], *, device=None, plots: Path | None = None, batch_size: int = 16
) -> dict:
    classes, y, probs, predicted = predict_records(
        bundle, records, device=device, batch_size=batch_size
    )
    report = report_with_sources(y, probs, classes, [r.source for r in records], y_pred=predicted)
    if plots is not None:
        from training.plots import write_plots

        write_plots(plots, y, probs, report)
    return report
