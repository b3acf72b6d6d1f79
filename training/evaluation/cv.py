"""Patient-grouped k-fold cross-validation: every film is predicted once by a model that never
saw its patient, so all covid19 films count, and the pooled figures get bootstrap intervals
over patients (a test split of ~60 positives cannot tell 0.90 from 0.95)."""

import random
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from classifier.device import machine, resolve_device, use_bf16
from training.data.manifests import Record, refuse_external
from training.ensemble.config import TrainConfig
from training.ensemble.fit import class_list, fit, scored
from training.evaluation.evaluate import predict_outputs
from training.evaluation.metrics import COVID, auc, rate


def patient_folds(records: list[Record], k: int, *, seed: int = 0) -> list[list[Record]]:
    """k folds of whole patients, stratified by each patient's set of labels."""
    if k < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    by_patient: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_patient[record.patient_id].append(record)
    if len(by_patient) < k:
        raise ValueError(f"{len(by_patient)} patients cannot fill {k} folds")
    strata: dict[str, list[str]] = defaultdict(list)
    for patient, items in sorted(by_patient.items()):
        strata["+".join(sorted({r.label for r in items}))].append(patient)
    rng = random.Random(seed)
    folds: list[list[Record]] = [[] for _ in range(k)]
    offset = 0
    for _, patients in sorted(strata.items()):
        rng.shuffle(patients)
        for i, patient in enumerate(patients):
            folds[(offset + i) % k].extend(by_patient[patient])
        offset += len(patients)  # the next stratum starts where this one stopped
    return folds


def _figures(y: np.ndarray, probs: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    k = classes.index(COVID) if COVID in classes else None
    aucs = [auc(y == c, probs[:, c]) for c in range(len(classes))]
    aucs = [a for a in aucs if a is not None]
    out = {
        "accuracy": float((y == pred).mean()) if len(y) else None,
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "covid19_sensitivity": None,
        "covid19_specificity": None,
        "covid19_auc": None,
    }
    if k is not None:
        pos, called = y == k, pred == k
        out["covid19_sensitivity"] = float(called[pos].mean()) if pos.any() else None
        out["covid19_specificity"] = float((~called[~pos]).mean()) if (~pos).any() else None
        out["covid19_auc"] = auc(pos, probs[:, k])
    return out


def pooled_with_intervals(
    y, probs, pred, patients: list[str], classes: list[str], *, n_boot: int = 1000, seed: int = 0
) -> dict:
    """The pooled figures and percentile 95% intervals from resampling patients (a patient's
    films stay together, as they are not independent)."""
    point = _figures(y, probs, pred, classes)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, patient in enumerate(patients):
        groups[patient].append(i)
    index = [np.array(v) for v in groups.values()]
    rng = np.random.default_rng(seed)
    samples = defaultdict(list)
    for _ in range(n_boot):
        rows = np.concatenate([index[j] for j in rng.integers(0, len(index), len(index))])
        for key, value in _figures(y[rows], probs[rows], pred[rows], classes).items():
            if value is not None:
                samples[key].append(value)
    out = {}
    for key, value in point.items():
        ci = np.percentile(samples[key], [2.5, 97.5]).tolist() if samples[key] else [None, None]
        out[key] = {"value": value, "ci": [float(c) if c is not None else None for c in ci]}
    return out


def per_source(calls: list[tuple[Record, str]], partial=()) -> dict:
    """Out-of-fold calls per source, with Wilson intervals: accuracy over the films of a class,
    covid19 sensitivity, and the share of the films that are not covid19 (partial labels
    such as tuberculosis included) that were not called covid19."""
    table = {}
    for source in sorted({r.source for r, _ in calls}):
        mine = [(r, c) for r, c in calls if r.source == source]
        classed = [(r, c) for r, c in mine if r.label not in partial]
        entry = {"n": len(mine)}
        entry["accuracy"] = rate(np.array([r.label == c for r, c in classed]))
        covid = [c == COVID for r, c in mine if r.label == COVID]
        entry["covid19_sensitivity"] = rate(np.array(covid)) if covid else None
        other = [c != COVID for r, c in mine if r.label != COVID]
        entry["not_covid19"] = rate(np.array(other)) if other else None
        table[source] = entry
    return table


def cross_validate(
    records: list[Record],
    cfg: TrainConfig,
    *,
    folds: int = 5,
    work_dir: Path | None = None,
    progress: bool = True,
    n_boot: int = 1000,
) -> dict:
    """Train one model per fold on the other folds (``fit``: its own validation split for
    early stopping and calibration), predict the held-out fold through the Predictor, pool."""
    started = time.perf_counter()
    refuse_external(records)
    # One class list for every fold, so that a fold without a rare label still has its column.
    cfg = replace(cfg, classes=class_list(scored(records, cfg), cfg.classes))
    parts = patient_folds(records, folds, seed=cfg.seed)
    classes, rows, per_fold, calls = None, [], [], []
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for k, held_out in enumerate(parts):
            fold_start = time.perf_counter()
            train = [r for j, part in enumerate(parts) if j != k for r in part]
            # Partial-label rows (not covid19, no class) train the other folds; held out, they
            # count only in the per-source "not called covid19" rates.
            every = held_out
            held_out = scored(held_out, cfg)
            bundle = Path(tmp) / f"fold{k}.safetensors"
            fit(train, bundle, replace(cfg), progress=progress, test_records=held_out)
            out = predict_outputs(bundle, every, device=cfg.device, cam=False)
            calls += list(zip(every, out.labels, strict=True))
            keep = [i for i, r in enumerate(every) if r.label not in cfg.not_covid_labels]
            out.probs, out.labels = out.probs[keep], [out.labels[i] for i in keep]
            classes = out.classes
            y = np.array([classes.index(r.label) for r in held_out])
            pred = np.array([classes.index(label) for label in out.labels])
            per_fold.append(
                {
                    "fold": k + 1,
                    "n": len(held_out),
                    "covid19": int(sum(r.label == COVID for r in held_out)),
                    **_figures(y, out.probs, pred, classes),
                    "seconds": round(time.perf_counter() - fold_start, 1),
                }
            )
            rows += [(r, out.probs[i], pred[i], y[i]) for i, r in enumerate(held_out)]
    y = np.array([row[3] for row in rows])
    probs = np.stack([row[1] for row in rows])
    pred = np.array([row[2] for row in rows])
    patients = [row[0].patient_id for row in rows]
    pooled = pooled_with_intervals(y, probs, pred, patients, classes, n_boot=n_boot)
    device = resolve_device(cfg.device)
    return {
        "folds": folds,
        "n_boot": n_boot,
        "classes": classes,
        "pooled": {
            "n": len(rows),
            "patients": len(set(patients)),
            "covid19": int(sum(row[0].label == COVID for row in rows)),
            **pooled,
        },
        "per_fold": per_fold,
        "per_source": per_source(calls, cfg.not_covid_labels),
        "config": asdict(cfg),
        "device": str(device),
        "bf16": use_bf16(device, cfg.precision),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }
