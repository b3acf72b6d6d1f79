"""Evaluate a bundle on any manifest, through the same Predictor the worker uses (including the
bundle's calibration and decision thresholds and its lung segmenter).

Besides the classification report, the evaluation says where the model looked (the share of
the fused Grad-CAM's mass inside the predicted lungs) and how it treats films that are not
COVID-19: adults of other collections, and hospitals it never trained on (rows marked
``external``). Rows whose label is none of the bundle's classes (e.g. tuberculosis) are
scored only where that makes sense: they are certainly not covid19.
"""

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier import load_bundle, read_metadata
from training.data.datasets import load_gray
from training.data.manifests import Record, records_sha256, split_by_patient
from training.ensemble.conformal import records_coverage
from training.evaluation.metrics import (
    COVID,
    grouped_quartiles,
    quartiles,
    rate,
    report_with_sources,
)

# The worker's default (INFERENCE_CAM_MAX_SIDE): the CAM lung fraction is measured on the
# same maps a radiologist sees.
CAM_MAX_SIDE = 512
# A heatmap whose largest value is at most this shows no evidence (maps are scaled to [0, 1]).
EMPTY_MAP = 1e-6


@dataclass
class Outputs:
    """What the Predictor said about each record."""

    classes: list[str]
    probs: np.ndarray  # N x C
    labels: list[str]  # the predicted class names
    cam_lung: list[float | None]
    lung_area: list[float | None]
    has_segmenter: bool
    # Conformal prediction sets per film (level key -> classes; {} without thresholds).
    sets: list[dict[str, list[str]]] | None = None
    # Per member (and "fused"), whether each film's heatmap is empty: no positive evidence.
    empty_maps: dict[str, list[bool]] | None = None


def predict_outputs(
    bundle,
    records: list[Record],
    *,
    device=None,
    batch_size: int = 16,
    cam: bool = True,
    tta: tuple[float, ...] = (),
) -> Outputs:
    predictor = load_bundle(
        bundle, device=device, batch_size=batch_size, cam_max_side=CAM_MAX_SIDE, tta=tta
    )
    probs, labels, cam_lung, lung_area, sets = [], [], [], [], []
    empty: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        for result in predictor.predict([load_gray(r.path) for r in chunk], cam=cam):
            probs.append([result.probabilities[c] for c in predictor.classes])
            labels.append(result.label)
            cam_lung.append(result.cam_lung_fraction)
            lung_area.append(result.lung_area_fraction)
            sets.append(result.prediction_sets)
            maps = {**result.heatmaps, "fused": result.fused_heatmap} if cam else {}
            for name, heatmap in maps.items():
                empty[name].append(heatmap is None or float(heatmap.max()) <= EMPTY_MAP)
    return Outputs(
        predictor.classes,
        np.array(probs).reshape(len(records), len(predictor.classes)),
        labels,
        cam_lung,
        lung_area,
        predictor.segmenter is not None,
        sets,
        dict(empty) if cam else None,
    )


def bundle_test_split(bundle: Path, records: list[Record]) -> tuple[list[Record], list[Record]]:
    """The bundle's own (train + val, test) split of the data it was trained on, rebuilt from
    its recorded seed and fractions. Refuses data whose hash is not the bundle's, a bundle
    whose test set was given rather than split off, and a rebuilt split whose counts differ
    from the recorded ones."""
    training = read_metadata(bundle).training
    if records_sha256(records) != training.get("data_sha256"):
        raise ValueError(
            "these are not the data the bundle was trained on (hash differs); "
            "pass them with --manifest instead"
        )
    if training.get("test_split") == "given":
        raise ValueError("this bundle was tested on a given set, not on a split of its data")
    cfg = training["config"]
    splits = split_by_patient(
        records, val=cfg["val_fraction"], test=cfg["test_fraction"], seed=cfg["seed"]
    )
    recorded = training.get("splits", {})
    partial = set(cfg.get("not_covid_labels", []))
    for name, rows in splits.items():
        # Validation and test record only their rows with a class (training.ensemble.fit.scored).
        counted = rows if name == "train" else [r for r in rows if r.label not in partial]
        if recorded.get(name, {}).get("images") != len(counted):
            raise ValueError(f"the rebuilt {name} split differs from the bundle's record")
    return splits["train"] + splits["val"], splits["test"]


def refuse_seen(seen: list[Record], records: list[Record]) -> None:
    """No patient id and no image (by content) of ``seen`` may be among ``records``."""
    patients = {r.patient_id for r in seen} & {r.patient_id for r in records}
    if patients:
        raise ValueError(f"{len(patients)} patient(s) of these rows trained the bundle")
    digest = lambda r: hashlib.sha256(r.path.read_bytes()).hexdigest()  # noqa: E731
    images = {digest(r) for r in seen} & {digest(r) for r in records}
    if images:
        raise ValueError(f"{len(images)} image(s) of these rows trained the bundle")


def _lung_tables(records: list[Record], out: Outputs) -> dict:
    labels = [r.label for r in records]
    sources = [r.source for r in records]
    tables = {}
    for key, values in (("cam_lung_fraction", out.cam_lung), ("lung_area_fraction", out.lung_area)):
        tables[key] = {
            "all": quartiles(values),
            "per_class": grouped_quartiles(values, labels),
            "per_source": grouped_quartiles(values, sources),
            "per_source_class": grouped_quartiles(
                values, [f"{s}/{lab}" for s, lab in zip(sources, labels, strict=True)]
            ),
        }
    return tables


def _not_covid(rows: list[int], records: list[Record], out: Outputs) -> dict:
    """covid19 specificity over these rows (none of which is covid19), overall and per source
    and label, with Wilson intervals."""
    called = np.array([out.labels[i] == COVID for i in rows], dtype=bool)
    groups = Counter((records[i].source, records[i].label) for i in rows)
    table = {"all": rate(~called), "per_source": {}, "per_source_label": {}}
    for source in sorted({records[i].source for i in rows}):
        mask = np.array([records[i].source == source for i in rows], dtype=bool)
        table["per_source"][source] = rate(~called[mask])
    for source, label in sorted(groups):
        mask = np.array([(records[i].source, records[i].label) == (source, label) for i in rows])
        table["per_source_label"][f"{source}/{label}"] = rate(~called[mask])
    return table


def _external(rows: list[int], records: list[Record], out: Outputs) -> dict:
    """Hospitals never trained on: per source and label, how many were not called covid19,
    how many normals were called normal, and what each film was called."""
    table = {}
    for key in sorted({(records[i].source, records[i].label) for i in rows}):
        mine = [i for i in rows if (records[i].source, records[i].label) == key]
        called = [out.labels[i] for i in mine]
        entry = {
            "not_covid19": rate(np.array([c != COVID for c in called])),
            "called": dict(Counter(called)),
        }
        if key[1] in out.classes:
            entry["correct"] = rate(np.array([c == key[1] for c in called]))
        table[f"{key[0]}/{key[1]}"] = entry
    return table


def _empty_maps(records: list[Record], out: Outputs) -> dict:
    """How often each member's heatmap (and the fused one) shows nothing, overall and per
    source; and the CAM lung share with an empty fused map counted as 0 (evidence hidden is
    not evidence in the lungs)."""
    sources = [r.source for r in records]
    table = {
        name: {
            "all": rate(np.array(flags)),
            "per_source": {
                s: rate(np.array([f for f, t in zip(flags, sources, strict=True) if t == s]))
                for s in sorted(set(sources))
            },
        }
        for name, flags in out.empty_maps.items()
    }
    if out.has_segmenter:
        zeroed = [
            0.0 if empty else share
            for share, empty in zip(out.cam_lung, out.empty_maps["fused"], strict=True)
        ]
        table["cam_lung_fraction_empty_as_zero"] = quartiles(zeroed)
    return table


def evaluate_bundle(
    bundle,
    records: list[Record],
    *,
    device=None,
    plots: Path | None = None,
    batch_size: int = 16,
    cam: bool = True,
    tta: tuple[float, ...] = (),
) -> dict:
    """The evaluation report: the classification report on the rows that are not external and
    whose label is a bundle class, plus the lung, adult non-COVID and external tables."""
    out = predict_outputs(bundle, records, device=device, batch_size=batch_size, cam=cam, tta=tta)
    classes = out.classes
    scored = [i for i, r in enumerate(records) if r.label in classes and not r.external]
    if not scored:
        raise ValueError("no rows to score: every row is external or has a label the bundle lacks")
    y = np.array([classes.index(records[i].label) for i in scored])
    predicted = np.array([classes.index(out.labels[i]) for i in scored])
    report = report_with_sources(
        y, out.probs[scored], classes, [records[i].source for i in scored], y_pred=predicted
    )
    report["unscored_labels"] = dict(
        Counter(r.label for r in records if r.label not in classes and not r.external)
    )
    if out.has_segmenter:
        report["lungs"] = _lung_tables(records, out)
    if out.empty_maps:
        report["empty_maps"] = _empty_maps(records, out)
    if any(out.sets):
        report["conformal_coverage"] = records_coverage(records, out.sets, out.classes)
    if COVID in classes:
        adults = [
            i for i, r in enumerate(records) if r.adult and r.label != COVID and not r.external
        ]
        if adults:
            report["adult_non_covid"] = _not_covid(adults, records, out)
    external = [i for i, r in enumerate(records) if r.external]
    if external:
        report["external"] = {
            "note": "hospital never trained on",
            "per_source_label": _external(external, records, out),
        }
        if COVID in classes:
            report["external"]["not_covid19"] = _not_covid(
                [i for i in external if records[i].label != COVID], records, out
            )
    if plots is not None:
        from training.evaluation.plots import write_plots

        write_plots(plots, y, out.probs[scored], report)
    return report
