"""Leave one hospital out: our stand-in for "a hospital the model never saw".

Every covid19 film we have comes from three collections of web figures and teaching files, so
a patient-disjoint test split still shares each film's hospital, country and collection with
the training data. Here a group of films (a country of ieee8023, or a whole collection that
names no hospital) is held out whole, whatever its labels; the model trains on the rest,
split by patient as usual; and the held-out group's covid19 films measure sensitivity where
the model has never been, beside the specificity on that model's own test split.

Kermany's Guangzhou and NIH's Bethesda are hospitals of their own in China and the USA: they
are not held out with ieee8023's Chinese or American films (holding them out would take away
most of the pediatric pneumonia or the adult normals, and measure that instead).
"""

import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from classifier.device import machine, resolve_device, use_bf16
from training.data.manifests import Record, refuse_external, split_by_patient
from training.ensemble.config import TrainConfig
from training.ensemble.conformal import records_coverage
from training.ensemble.fit import class_list, fit, scored
from training.evaluation.evaluate import predict_outputs
from training.evaluation.metrics import COVID, rate, wilson_ci
from training.evaluation.report import rate_text

# Collections that name no hospital: each is held out as a whole.
WHOLE_SOURCES = ("actualmed", "figure1")
# Collections whose films name a hospital, city or country: held out a country at a time.
LOCATED_SOURCES = ("ieee8023",)
MIN_COVID = 14


def country(location: str) -> str:
    return location.rsplit(",", 1)[-1].strip()


def location_group(record: Record) -> str | None:
    """The group a film is held out with: "actualmed", "ieee8023/Germany"; None for films
    that are never held out (another hospital's collection, or no location)."""
    if record.source in WHOLE_SOURCES:
        return record.source
    if record.source in LOCATED_SOURCES and record.location:
        return f"{record.source}/{country(record.location)}"
    return None


def holdout_groups(records: list[Record], *, min_covid: int = MIN_COVID) -> dict[str, list[Record]]:
    """The groups with at least ``min_covid`` covid19 films, each with all its films, largest
    covid19 count first. A patient whose films fall in two groups goes with the first."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        group = location_group(record)
        if group is not None:
            groups[group].append(record)
    covid = {g: sum(r.label == COVID for r in rs) for g, rs in groups.items()}
    kept = sorted((g for g in groups if covid[g] >= min_covid), key=lambda g: (-covid[g], g))
    return {g: groups[g] for g in kept}


def _sensitivity(records: list[Record], labels: list[str]) -> tuple[dict | None, dict]:
    """covid19 found among the covid19 films, and what the missed ones were called."""
    calls = [c for r, c in zip(records, labels, strict=True) if r.label == COVID]
    if not calls:
        return None, {}
    missed = Counter(c for c in calls if c != COVID)
    return rate(np.array([c == COVID for c in calls])), dict(missed.most_common())


def _not_covid(records: list[Record], labels: list[str]) -> dict | None:
    others = [c != COVID for r, c in zip(records, labels, strict=True) if r.label != COVID]
    return rate(np.array(others)) if others else None


def score_group(
    *, name: str, held: list[Record], test: list[Record], bundle: Path, cfg: TrainConfig
) -> dict:
    """What the bundle trained without ``held`` says about it and about its own test split."""
    out = predict_outputs(bundle, held + test, device=cfg.device, cam=False)
    n = len(held)
    held_labels, test_labels = out.labels[:n], out.labels[n:]
    sensitivity, missed = _sensitivity(held, held_labels)
    test_sensitivity, _ = _sensitivity(test, test_labels)
    return {
        "group": name,
        "n": n,
        "patients": len({r.patient_id for r in held}),
        "labels": dict(Counter(r.label for r in held)),
        "covid19_sensitivity": sensitivity,
        "missed_called": missed,
        "held_not_covid19": _not_covid(held, held_labels),
        "test_n": len(test),
        "test_specificity": _not_covid(test, test_labels),
        "test_sensitivity": test_sensitivity,
        "coverage": {
            "held": records_coverage(held, out.sets[:n], out.classes),
            "test": records_coverage(test, out.sets[n:], out.classes),
        },
    }


def leave_group_out(
    records: list[Record],
    cfg: TrainConfig,
    *,
    groups: list[str] | None = None,
    min_covid: int = MIN_COVID,
    work_dir: Path | None = None,
    progress: bool = True,
) -> dict:
    """Train one model per held-out group on every other film (its own patient split for
    early stopping, calibration and a test split), then score the group and that test split."""
    started = time.perf_counter()
    refuse_external(records)
    cfg = replace(cfg, classes=class_list(scored(records, cfg), cfg.classes))
    found = holdout_groups(records, min_covid=min_covid)
    unknown = sorted(set(groups or []) - set(found))
    if unknown:
        raise ValueError(f"no such group (with {min_covid}+ covid19 films): {unknown}")
    chosen = {g: rs for g, rs in found.items() if not groups or g in groups}
    if not chosen:
        raise ValueError(
            f"no group has {min_covid}+ covid19 films: the manifests need a location column "
            f"({', '.join(LOCATED_SOURCES)}) or films of {', '.join(WHOLE_SOURCES)}"
        )
    results = []
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for name, held in chosen.items():
            group_start = time.perf_counter()
            patients = {r.patient_id for r in held}
            rest = [r for r in records if r.patient_id not in patients]
            bundle = Path(tmp) / "fold.safetensors"
            fit(rest, bundle, cfg, progress=progress)
            split = split_by_patient(
                rest, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed
            )
            row = score_group(name=name, held=held, test=split["test"], bundle=bundle, cfg=cfg)
            row["seconds"] = round(time.perf_counter() - group_start, 1)
            results.append(row)
            if progress:
                print(format_group(row), file=sys.stderr, flush=True)
    device = resolve_device(cfg.device)
    return {
        "by": "location",
        "min_covid": min_covid,
        "groups": results,
        "pooled": _pooled(results),
        "config": asdict(cfg),
        "device": str(device),
        "bf16": use_bf16(device, cfg.precision),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _pooled(results: list[dict]) -> dict:
    """Every held-out covid19 film once (the groups are disjoint), and the worst group."""
    found = sum(r["covid19_sensitivity"]["k"] for r in results if r["covid19_sensitivity"])
    total = sum(r["covid19_sensitivity"]["n"] for r in results if r["covid19_sensitivity"])
    rates = [r["covid19_sensitivity"]["rate"] for r in results if r["covid19_sensitivity"]]
    specs = [r["test_specificity"]["rate"] for r in results if r["test_specificity"]]
    return {
        "covid19_sensitivity": (
            {"n": total, "k": found, "rate": found / total, "ci": wilson_ci(found, total)}
            if total
            else None
        ),
        "worst_group_sensitivity": min(rates) if rates else None,
        "mean_test_specificity": float(np.mean(specs)) if specs else None,
        "min_test_specificity": min(specs) if specs else None,
    }


def _recipe(result: dict, *, but: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in result["config"].items() if k not in but}


def _same_recipe(results: list[dict], *, but: tuple[str, ...] = ()) -> None:
    """Refuse runs of different recipes (keys an older run lacks are not compared)."""
    first = _recipe(results[0], but=but)
    for other in results[1:]:
        theirs = _recipe(other, but=but)
        differ = sorted(k for k in first.keys() & theirs.keys() if first[k] != theirs[k])
        if differ:
            raise ValueError(f"these runs differ in their recipe: {', '.join(differ)}")


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def holdout_merge(parts: list[dict]) -> dict:
    """One recipe and seed run in parts (``cv --by location --groups``, on one machine or
    several): the groups side by side and pooled again. Refuses parts of different recipes,
    or parts that hold out the same group twice."""
    if not parts:
        raise ValueError("nothing to merge")
    _same_recipe(parts)
    groups = [row for part in parts for row in part["groups"]]
    names = [row["group"] for row in groups]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"held out in more than one part: {', '.join(twice)}")
    return {
        **{k: parts[0][k] for k in ("by", "min_covid", "config", "device")},
        "groups": groups,
        "pooled": _pooled(groups),
        "bf16": sorted({b for p in parts for b in _listed(p["bf16"])}),
        "machine": parts[0]["machine"],
        "parts": [
            {
                "groups": [r["group"] for r in p["groups"]],
                "machine": p["machine"],
                "bf16": p["bf16"],
            }
            for p in parts
        ],
        "seconds": round(sum(p["seconds"] for p in parts), 1),
    }


def _summed(rates: list[dict | None]) -> dict | None:
    rates = [r for r in rates if r]
    if not rates:
        return None
    k, n = sum(r["k"] for r in rates), sum(r["n"] for r in rates)
    return {"n": n, "k": k, "rate": k / n, "ci": wilson_ci(k, n)}


def holdout_over_seeds(runs: list[dict]) -> dict:
    """The same recipe and groups at several seeds. Per group, its covid19 films are counted
    once per seed (found and total summed over the seeds; the interval treats the repeats as
    independent films, so it is narrower than the truth). The worst group is the worst of those
    rates; the test-split specificity is the mean and the minimum over every model trained."""
    if len(runs) < 2:
        raise ValueError("over seeds needs at least two runs")
    _same_recipe(runs, but=("seed",))
    seeds = [r["config"]["seed"] for r in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed appears twice: {seeds}")
    order = [row["group"] for row in runs[0]["groups"]]
    by_run = [{row["group"]: row for row in r["groups"]} for r in runs]
    if any(set(b) != set(order) for b in by_run):
        raise ValueError("every seed must hold out the same groups")
    groups = []
    for name in order:
        rows = [b[name] for b in by_run]
        groups.append(
            {
                "group": name,
                "covid19_sensitivity": _summed([r["covid19_sensitivity"] for r in rows]),
                "per_seed": [(r["covid19_sensitivity"] or {}).get("rate") for r in rows],
                "test_specificity": _summed([r["test_specificity"] for r in rows]),
            }
        )
    pooled = _pooled(groups)
    specs = [
        r["test_specificity"]["rate"] for b in by_run for r in b.values() if r["test_specificity"]
    ]
    pooled["mean_test_specificity"] = float(np.mean(specs))
    pooled["min_test_specificity"] = min(specs)
    return {
        "by": "location",
        "seeds": seeds,
        "groups": groups,
        "pooled": pooled,
        "config": _recipe(runs[0], but=("seed",)),
    }


def format_group(row: dict) -> str:
    missed = ", ".join(f"{k} {v}" for k, v in row["missed_called"].items()) or "none"
    return (
        f"{row['group']:<22} covid19 found {rate_text(row['covid19_sensitivity'])}; missed called "
        f"{missed}; its other films not covid19 {rate_text(row['held_not_covid19'])}; test split "
        f"specificity {rate_text(row['test_specificity'])} ({row['seconds']:.0f} s)"
    )


def format_holdout(result: dict) -> str:
    lines = [format_group(row) for row in result["groups"]]
    pooled = result["pooled"]
    lines.append(
        f"pooled: covid19 found {rate_text(pooled['covid19_sensitivity'])}, worst group "
        f"{pooled['worst_group_sensitivity']:.3f}; test split specificity mean "
        f"{pooled['mean_test_specificity']:.3f}, min {pooled['min_test_specificity']:.3f}"
    )
    for row in result["groups"]:
        for part in ("held", "test"):
            for key, table in row["coverage"][part].items():
                lines.append(
                    f"coverage {key} {row['group']:<22} {part:<5} {rate_text(table['all'])} "
                    f"mean set size {table['all']['mean_size']:.2f}"
                )
    lines.append(f"{result['machine']}, bf16 {result['bf16']}, {result['seconds'] / 60:.1f} min")
    return "\n".join(lines)
