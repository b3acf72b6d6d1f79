"""Levers on and off, over seeds: ``python -m training levers``.

Each setting is a recipe change (TrainConfig fields, and which Shenzhen films join
training). Every (seed, setting) run trains on the same patients of that seed and is judged
on the same rows: the seed's patient-disjoint test split of the collections, held-out
Shenzhen patients (normal and tuberculosis), and the external hospital (Montgomery), which
never trains anything. One run is noise; the table gives each setting's mean and range.
"""

import json
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from classifier.device import machine
from training.data.manifests import Record, refuse_external, split_by_patient
from training.ensemble.config import TrainConfig
from training.ensemble.fit import fit
from training.evaluation.evaluate import predict_outputs
from training.evaluation.metrics import COVID

SHENZHEN = ("none", "normal", "all")  # which training-side Shenzhen films join: all = + TB
TB = "tuberculosis"
HOLDOUT_FRACTION = 0.3


def parse_setting(text: str) -> tuple[str, dict]:
    """``name:key=value,key=value`` -> (name, changes). Keys are TrainConfig fields, plus
    ``shenzhen`` (one of SHENZHEN)."""
    name, _, body = text.partition(":")
    if not name:
        raise ValueError(f"setting {text!r} has no name")
    types = {f.name: f.type for f in fields(TrainConfig)}
    changes: dict = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"setting {name}: {item!r} is not key=value")
        if key == "shenzhen":
            if value not in SHENZHEN:
                raise ValueError(f"setting {name}: shenzhen must be one of {SHENZHEN}")
            changes[key] = value
        elif key not in types:
            raise ValueError(f"setting {name}: unknown option {key!r}")
        else:
            changes[key] = _value(types[key], value)
    return name, changes


def _value(kind, value: str):
    kind = str(kind)
    if "bool" in kind:
        if value.lower() not in {"0", "1", "true", "false"}:
            raise ValueError(f"{value!r} is not a boolean")
        return value.lower() in {"1", "true"}
    if "list" in kind:
        return [v for v in value.split("+") if v]
    if "float" in kind:
        return float(value)
    if "int" in kind:
        return int(value)
    return value


def _rate(hits: list[bool]) -> float | None:
    return float(np.mean(hits)) if hits else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def _figures(meta, outputs, rows: dict[str, list[Record]]) -> dict:
    ensemble = meta.metrics["ensemble"]
    covid = ensemble["per_class"].get(COVID, {})
    per_source = ensemble.get("per_source", {})
    figures = {
        "macro_auc": ensemble["macro_auc"],
        "accuracy": ensemble["accuracy"],
        "covid_sensitivity": covid.get("sensitivity"),
        "covid_specificity": covid.get("specificity"),
        "ieee8023_accuracy": per_source.get("ieee8023", {}).get("accuracy"),
    }
    offset = 0
    for part, records in rows.items():
        labels = outputs.labels[offset : offset + len(records)]
        cams = outputs.cam_lung[offset : offset + len(records)]
        offset += len(records)
        figures[f"{part}_cam_lung_median"] = _median(cams)
        if part == "test":
            continue
        figures[f"{part}_not_covid"] = _rate([p != COVID for p in labels])
        normals = [
            p == "normal" for p, r in zip(labels, records, strict=True) if r.label == "normal"
        ]
        figures[f"{part}_normal_called_normal"] = _rate(normals)
        tb = [p != COVID for p, r in zip(labels, records, strict=True) if r.label == TB]
        figures[f"{part}_tb_not_covid"] = _rate(tb)
    return figures


def lever_runs(
    collections: list[Record],
    lungs: list[Record],
    base: TrainConfig,
    settings: dict[str, dict],
    *,
    seeds: list[int],
    out: Path | None = None,
    progress: bool = False,
) -> dict:
    """Train every setting on every seed; return (and, with ``out``, keep writing) the runs."""
    refuse_external(collections)
    shenzhen = [r for r in lungs if not r.external]
    external = [r for r in lungs if r.external]
    result = {"settings": settings, "seeds": seeds, "base": base.__dict__, "runs": []}
    result["machine"] = machine()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            split = split_by_patient(collections, val=0.0, test=base.test_fraction, seed=seed)
            held = split_by_patient(shenzhen, val=0.0, test=HOLDOUT_FRACTION, seed=seed)
            rows = {"test": split["test"], "shenzhen": held["test"], "external": external}
            evaluated = [r for part in rows.values() for r in part]
            for name, changes in settings.items():
                started = time.perf_counter()
                changes = dict(changes)
                which = changes.pop("shenzhen", "none")
                extra = [r for r in held["train"] if which == "all" or r.label == "normal"]
                cfg = replace(base, seed=seed, **changes)
                if which == "all" and TB not in cfg.not_covid_labels:
                    cfg = replace(cfg, not_covid_labels=[*cfg.not_covid_labels, TB])
                bundle = Path(tmp) / f"{name}-{seed}.safetensors"
                train = split["train"] + (extra if which != "none" else [])
                meta = fit(train, bundle, cfg, progress=progress, test_records=split["test"])
                outputs = predict_outputs(bundle, evaluated, device=cfg.device, cam=True)
                run = {
                    "setting": name,
                    "seed": seed,
                    "train_images": len(train),
                    "seconds": round(time.perf_counter() - started, 1),
                    **_figures(meta, outputs, rows),
                }
                result["runs"].append(run)
                if out is not None:
                    Path(out).write_text(json.dumps(result, indent=2, default=str))
    result["summary"] = summarize(result["runs"], list(settings))
    if out is not None:
        Path(out).write_text(json.dumps(result, indent=2, default=str))
    return result


COLUMNS = (
    ("external_not_covid", "Montgomery not covid19"),
    ("external_normal_called_normal", "Montgomery normals normal"),
    ("shenzhen_not_covid", "Shenzhen held-out not covid19"),
    ("test_cam_lung_median", "CAM in lungs (test)"),
    ("external_cam_lung_median", "CAM in lungs (external)"),
    ("covid_sensitivity", "covid19 sens"),
    ("covid_specificity", "covid19 spec"),
    ("macro_auc", "macro AUC"),
    ("ieee8023_accuracy", "ieee8023 acc"),
    ("seconds", "s per run"),
)


def summarize(runs: list[dict], order: list[str]) -> dict:
    """Per setting and figure: the mean, min and max over seeds."""
    summary = {}
    for name in order:
        mine = [r for r in runs if r["setting"] == name]
        summary[name] = {"seeds": len(mine)}
        for key, _ in COLUMNS:
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                summary[name][key] = {
                    "mean": float(np.mean(values)),
                    "min": float(np.min(values)),
                    "max": float(np.max(values)),
                }
    return summary


def format_levers(result: dict) -> str:
    """The lever table in Markdown: mean (min-max) over seeds."""
    head = "| setting | seeds | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 2)]
    for name, entry in result["summary"].items():
        cells = []
        for key, _ in COLUMNS:
            value = entry.get(key)
            if value is None:
                cells.append("–")
            elif key == "seconds":
                cells.append(f"{value['mean']:.0f}")
            else:
                cells.append(f"{value['mean']:.3f} ({value['min']:.2f}–{value['max']:.2f})")
        lines.append(f"| {name} | {entry['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
