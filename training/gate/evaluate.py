"""How well the gate does: frontal films kept (per source, the external hospital apart), and
per kind of non-frontal image the share caught and the AUROC of each learned score, for the
gate trained on every kind and leave-one-kind-out (trained without the kind it is tested on).
"""

import sys
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from classifier import load_bundle, read_metadata
from classifier.bundle import load_bundle_members, load_segmenter, save_bundle
from classifier.gate import GateSpec, lung_reasons
from training.data.datasets import load_gray
from training.data.manifests import records_sha256
from training.evaluation.metrics import auc, rate
from training.evaluation.report import number as _f
from training.gate.negatives import from_films, package_images, real_negatives, synthetic
from training.gate.train import FRONTAL, Corpus, build_corpus, fit_gate, learned_keep, measure


def _auroc(corpus: Corpus, negatives: np.ndarray, frontal: np.ndarray, score: np.ndarray):
    positive = np.r_[np.ones(len(negatives), bool), np.zeros(len(frontal), bool)]
    return auc(positive, np.r_[score[negatives], score[frontal]])


def verdicts(corpus: Corpus, spec: GateSpec, scores: dict) -> dict[str, np.ndarray]:
    """Per image: refused by the deterministic checks, by the learned layers, and overall."""
    checks = np.array([bool(c) for c in corpus.checks])
    learned = ~learned_keep(spec, scores["probs"][:, 0], scores["distance"], corpus.lungs)
    return {"checks": checks, "learned": learned, "refused": checks | learned}


def kind_row(corpus: Corpus, spec: GateSpec, scores: dict, rows: np.ndarray, frontal) -> dict:
    v = verdicts(corpus, spec, scores)
    network = scores["probs"][:, 0] < spec.min_frontal
    lungs = np.array([s is not None and bool(lung_reasons(spec, s)) for s in corpus.lungs])
    return {
        "n": len(rows),
        "caught": rate(v["refused"][rows]),
        "caught_by_checks": rate(v["checks"][rows]),
        "caught_by_network": rate(network[rows]),
        "caught_by_distance": rate((scores["distance"] > spec.max_distance)[rows]),
        "caught_by_lungs": rate(lungs[rows]),
        "auroc_network": _auroc(corpus, rows, frontal, 1 - scores["probs"][:, 0]),
        "auroc_distance": _auroc(corpus, rows, frontal, scores["distance"]),
    }


def keep_table(corpus: Corpus, spec: GateSpec, scores: dict) -> dict:
    """Frontal films kept on the test split (per source) and on the external hospital."""
    kept = ~verdicts(corpus, spec, scores)["refused"]
    out = {}
    for split in ("val", "test", "external"):
        rows = corpus.where(split=split, kind=FRONTAL)
        if not len(rows):
            continue
        out[split] = {"all": rate(kept[rows])}
        for source in sorted({corpus.sources[i] for i in rows}):
            mine = rows[np.array([corpus.sources[i] == source for i in rows])]
            out[split][source] = rate(kept[mine])
    return out


def negative_kinds(corpus: Corpus) -> list[str]:
    return sorted({k for k in corpus.kinds if k != FRONTAL})


def evaluate_gate(corpus: Corpus, *, epochs: int = 12, loko: bool = True, seed: int = 0):
    """The gate trained on every kind (per-kind table on the test split) and, with ``loko``,
    once per kind without it (that kind's table over all its images: none trained it)."""
    gate, scores = fit_gate(corpus, epochs=epochs, seed=seed)
    frontal_test = corpus.where(split="test", kind=FRONTAL)
    report = {
        "spec": {k: getattr(gate.spec, k) for k in _THRESHOLDS},
        "keep": keep_table(corpus, gate.spec, scores),
        "all_kinds": {
            kind: kind_row(
                corpus, gate.spec, scores, corpus.where(split="test", kind=kind), frontal_test
            )
            for kind in negative_kinds(corpus)
            if len(corpus.where(split="test", kind=kind))
        },
        "counts": _counts(corpus),
    }
    if loko:
        report["leave_one_kind_out"] = {}
        for kind in negative_kinds(corpus):
            print(f"gate: leaving out {kind}", file=sys.stderr, flush=True)
            spec_k, scores_k = fit_gate(corpus, exclude=kind, epochs=epochs, seed=seed)
            row = kind_row(corpus, spec_k.spec, scores_k, corpus.where(kind=kind), frontal_test)
            row["frontal_test_kept"] = keep_table(corpus, spec_k.spec, scores_k)["test"]["all"]
            report["leave_one_kind_out"][kind] = row
        caught = [r["caught"] for r in report["leave_one_kind_out"].values()]
        hits = sum(c["k"] for c in caught)
        total = sum(c["n"] for c in caught)
        report["leave_one_kind_out_pooled"] = rate(np.r_[np.ones(hits), np.zeros(total - hits)])
    return gate, report


_THRESHOLDS = (
    "min_frontal",
    "max_distance",
    "min_lung_side",
    "min_lung_balance",
    "min_lung_area",
    "max_lung_area",
)


def _counts(corpus: Corpus) -> dict:
    out: dict[str, dict[str, int]] = {}
    for kind, split in zip(corpus.kinds, corpus.splits, strict=True):
        out.setdefault(kind, {}).setdefault(split, 0)
        out[kind][split] += 1
    return out


def _pct(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "–"
    lo, hi = r["ci"] or (None, None)
    ci = f" ({lo:.2f}–{hi:.2f})" if lo is not None else ""
    return f"{r['rate']:.3f} {r['k']}/{r['n']}{ci}"


def format_gate(report: dict) -> str:
    lines = ["Frontal films kept (the gate's every layer):"]
    for split, table in report["keep"].items():
        lines += [f"  {split:<9} {source:<12} {_pct(r)}" for source, r in table.items()]
    lines.append("Caught per kind, gate trained on every kind (test split):")
    lines += _kind_lines(report["all_kinds"])
    if "leave_one_kind_out" in report:
        lines.append(
            "Leave one kind out: caught by a gate that never saw the kind (all its images):"
        )
        lines += _kind_lines(report["leave_one_kind_out"])
        lines.append(f"  pooled    {_pct(report['leave_one_kind_out_pooled'])}")
    return "\n".join(lines)


def _kind_lines(table: dict) -> list[str]:
    head = (
        f"  {'kind':<12}{'caught':>28}{'checks':>8}{'network':>9}{'dist.':>7}{'lungs':>7}"
        f"{'AUROC net':>10}{'dist.':>7}"
    )
    rows = [
        f"  {kind:<12}{_pct(r['caught']):>28}{_f(r['caught_by_checks']['rate']):>8}"
        f"{_f(r['caught_by_network']['rate']):>9}{_f(r['caught_by_distance']['rate']):>7}"
        f"{_f(r['caught_by_lungs']['rate']):>7}{_f(r['auroc_network']):>10}"
        f"{_f(r['auroc_distance']):>7}"
        for kind, r in table.items()
    ]
    return [head, *rows]


def make_gate(
    bundle,
    films: list,
    *,
    not_cxr,
    out,
    external: list = (),
    epochs: int = 12,
    per_kind: int = 200,
    synthetic_count: int = 200,
    variants: int = 25,
    loko: bool = True,
    seed: int = 0,
) -> dict:
    """Build the corpus for a bundle, measure the gate, and write the bundle with its gate."""
    meta = read_metadata(bundle)
    if records_sha256(films) != meta.training.get("data_sha256"):
        raise ValueError("these are not the films the bundle was trained on (hash differs)")
    sources = [(load_gray(r.path), r.patient_id) for r in films]
    negatives = (
        real_negatives(not_cxr)
        + from_films(sources, per_kind, seed)
        + synthetic(synthetic_count, seed)
        + package_images(variants, seed)
    )
    corpus = build_corpus(films, negatives, config=meta.training["config"], external=external)
    measure(corpus, load_bundle(bundle, device="cpu", gate=False))
    gate, report = evaluate_gate(corpus, epochs=epochs, loko=loko, seed=seed)
    gate.spec = replace(
        gate.spec,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training={"epochs": epochs, "seed": seed, "counts": report["counts"]},
        metrics={k: v for k, v in report.items() if k != "counts"},
    )
    _, members = load_bundle_members(bundle)
    save_bundle(out, members, replace(meta, gate={}), segmenter=load_segmenter(bundle), gate=gate)
    return report
