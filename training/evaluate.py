"""Evaluate a bundle on any manifest, through the same Predictor the worker uses."""

import numpy as np

from classifier import load_bundle
from training.data import Record, load_gray
from training.metrics import report_with_sources


def evaluate_bundle(
    bundle, records: list[Record], *, device=None, precision="auto", batch_size: int = 16
) -> dict:
    predictor = load_bundle(bundle, device=device, precision=precision, batch_size=batch_size)
    classes = predictor.classes
    unknown = {r.label for r in records} - set(classes)
    if unknown:
        raise ValueError(f"manifest labels not in the bundle's classes: {sorted(unknown)}")
    probs = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        results = predictor.predict([load_gray(r.path) for r in chunk], cam=False)
        probs.extend([[res.probabilities[c] for c in classes] for res in results])
    y = np.array([classes.index(r.label) for r in records])
    return report_with_sources(y, np.array(probs), classes, [r.source for r in records])
