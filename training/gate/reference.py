"""What the drift monitor compares a model's new films with (issue 29), stored in the bundle's
gate metadata as ``reference``:

- the feature distance of the training split's frontal films (the films the distance was
  fitted on), as 101 quantiles, and their 95th percentile;
- the validation split's distances, as 101 quantiles, and their share beyond the training
  films' 95th percentile (far more than 5%: the distance was fitted on the training films, so
  films it never saw, even from the same hospitals, sit further);
- the validation films' prediction mix, mean confidence and agreement with their labels.

Every figure is measured the way the worker measures a new film: the bundle's own Predictor,
its gate included, at the precision it picks on this machine.
"""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from classifier import load_bundle, read_metadata
from classifier.bundle import load_bundle_members, load_gate, load_segmenter, save_bundle
from training.data.datasets import load_gray
from training.data.manifests import Record, records_sha256, split_by_patient

QUANTILES = 101  # 0%, 1%, ..., 100%
REFERENCE_FILMS = 20  # fewer training or validation films than this: no reference


def drift_reference(
    *,
    train_distance: np.ndarray,
    val_distance: np.ndarray,
    val_labels: list[str],
    val_confidence: np.ndarray,
    val_truth: list[str],
    classes: list[str],
) -> dict:
    """The reference from measured figures (distances of frontal films; the validation films'
    predicted labels, confidences and true labels)."""
    train_distance = np.asarray(train_distance, dtype=float)
    val_distance = np.asarray(val_distance, dtype=float)
    if min(len(train_distance), len(val_distance)) < REFERENCE_FILMS:
        raise ValueError(
            f"a drift reference needs at least {REFERENCE_FILMS} training and validation films"
        )
    p95 = float(np.quantile(train_distance, 0.95))
    mix = {c: sum(label == c for label in val_labels) / len(val_labels) for c in classes}
    known = [(p, t) for p, t in zip(val_labels, val_truth, strict=True) if t in classes]
    return {
        "films": {"train": len(train_distance), "val": len(val_distance)},
        "distance_quantiles": [
            round(float(q), 3) for q in np.quantile(train_distance, np.linspace(0, 1, QUANTILES))
        ],
        "distance_p95": round(p95, 3),
        # The validation films': films the distance was not fitted on, as new films from the
        # same hospitals are. The monitor's two-sample test compares new films with these.
        "val_distance_quantiles": [
            round(float(q), 3) for q in np.quantile(val_distance, np.linspace(0, 1, QUANTILES))
        ],
        "val_beyond_p95": round(float(np.mean(val_distance > p95)), 4),
        "val_mix": {c: round(v, 4) for c, v in mix.items()},
        "val_confidence": round(float(np.mean(val_confidence)), 4),
        "val_agreement": round(sum(p == t for p, t in known) / len(known), 4) if known else None,
        "val_agreement_films": len(known),
    }


def _measure(predictor, records: list[Record], batch: int = 16) -> dict:
    distance, labels, confidence = [], [], []
    for start in range(0, len(records), batch):
        images = [load_gray(r.path) for r in records[start : start + batch]]
        for result in predictor.predict(images, cam=False):
            distance.append(result.assessment.scores.get("feature_distance"))
            labels.append(result.label)
            confidence.append(result.probabilities[result.label])
    if any(d is None for d in distance):
        raise ValueError("the bundle's gate has no feature distance: no drift reference")
    return {"distance": np.array(distance), "labels": labels, "confidence": np.array(confidence)}


def reference_measure(bundle: Path, films: list[Record]) -> dict:
    """The reference of ``bundle``, measured on its own training and validation split of
    ``films`` (the rows it was trained on: their hash must match)."""
    meta = read_metadata(bundle)
    if records_sha256(films) != meta.training.get("data_sha256"):
        raise ValueError("these are not the films the bundle was trained on (hash differs)")
    if not meta.gate:
        raise ValueError(f"{bundle} has no gate: the monitor's distance needs one")
    config = meta.training["config"]
    splits = split_by_patient(
        films, val=config["val_fraction"], test=config["test_fraction"], seed=config["seed"]
    )
    predictor = load_bundle(bundle, device="cpu")
    train, val = _measure(predictor, splits["train"]), _measure(predictor, splits["val"])
    reference = drift_reference(
        train_distance=train["distance"],
        val_distance=val["distance"],
        val_labels=val["labels"],
        val_confidence=val["confidence"],
        val_truth=[r.label for r in splits["val"]],
        classes=list(meta.classes),
    )
    return reference | {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "precision": "bf16" if predictor.bf16 else "fp32",
    }


def reference_write(bundle: Path, reference: dict, out: Path) -> str:
    """Copy ``bundle`` with ``reference`` in its gate metadata (weights unchanged); sha256."""
    meta, members = load_bundle_members(bundle)
    gate = load_gate(bundle)
    if gate is None:
        raise ValueError(f"{bundle} has no gate")
    gate.spec = replace(gate.spec, reference=reference)
    return save_bundle(
        out, members, replace(meta, gate={}), segmenter=load_segmenter(bundle), gate=gate
    )
