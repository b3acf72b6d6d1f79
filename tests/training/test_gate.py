"""The gate's training and its leave-one-kind-out evaluation, on the small samples."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from classifier import load_bundle, read_metadata
from classifier.bundle import load_gate
from tests.conftest import SAMPLE_MANIFEST, bundle_with
from training.__main__ import main
from training.data.datasets import load_gray
from training.data.manifests import read_manifest, records_sha256, split_by_patient
from training.ensemble.config import TrainConfig
from training.ensemble.fit import fit
from training.gate import train as gate_module
from training.gate.evaluate import evaluate_gate, negative_kinds
from training.gate.negatives import (
    KIND_LABELS,
    from_films,
    package_images,
    real_negatives,
    synthetic,
)
from training.gate.train import FRONTAL, build_corpus, measure

NOT_CXR = SAMPLE_MANIFEST.parent.parent / "not_cxr_sample" / "manifest.csv"
CONFIG = {"seed": 0, "val_fraction": 0.2, "test_fraction": 0.2}


@pytest.fixture(scope="module")
def films():
    return read_manifest(SAMPLE_MANIFEST)


def _negatives(films):
    sources = [(load_gray(r.path), r.patient_id) for r in films]
    return (
        real_negatives(NOT_CXR)
        + from_films(sources, 6, 0)
        + synthetic(10, 0)
        + package_images(2, 0)
    )


def test_every_generated_kind_is_made_and_labelled_for_the_gate(films):
    negatives = _negatives(films)
    assert {n.kind for n in negatives} == set(KIND_LABELS)
    for item in negatives:
        assert item.image.mode == "L" and min(item.image.size) >= 32, item.kind
    patients = {r.patient_id for r in films}
    derived = [n for n in negatives if n.kind in {"rotated", "inverted", "crop"}]
    assert derived and all(n.group in patients for n in derived)


def test_a_made_image_shares_the_split_of_the_patient_it_came_from(films):
    corpus = build_corpus(films, _negatives(films), config=CONFIG)
    split_of = {}
    for kind, split, source in zip(corpus.kinds, corpus.splits, corpus.sources, strict=True):
        if kind == FRONTAL:
            continue
        split_of.setdefault(source, set()).add(split)
    assert all(len(splits) == 1 for splits in split_of.values())
    splits = split_by_patient(films, val=0.2, test=0.2, seed=0)
    patient_split = {r.patient_id: name for name, rows in splits.items() for r in rows}
    derived = [n for n in _negatives(films) if n.kind in {"rotated", "inverted", "crop"}]
    assert {patient_split[n.group] for n in derived} == {"train", "val", "test"}
    for n in derived:
        assert split_of[n.group] == {patient_split[n.group]}


def test_leave_one_kind_out_trains_each_gate_without_the_kind_it_is_scored_on(
    films, tiny_bundle_with_lungs, monkeypatch
):
    corpus = build_corpus(films, _negatives(films), config=CONFIG)
    measure(corpus, load_bundle(tiny_bundle_with_lungs, device="cpu", gate=False))
    trained_on = []
    real_train = gate_module.train_net

    def spy(corpus_, rows, spec, **kwargs):
        trained_on.append({corpus_.kinds[i] for i in rows})
        return real_train(corpus_, rows, spec, **{**kwargs, "epochs": 1})

    monkeypatch.setattr(gate_module, "train_net", spy)
    gate, report = evaluate_gate(corpus, epochs=1, loko=True)
    kinds = negative_kinds(corpus)
    assert set(report["leave_one_kind_out"]) == set(kinds) == set(KIND_LABELS)
    # The first gate saw every kind; each later one lacked exactly the kind it is scored on.
    assert trained_on[0] >= set(kinds)
    for kind, seen in zip(kinds, trained_on[1:], strict=True):
        assert kind not in seen and seen >= set(kinds) - {kind}
        row = report["leave_one_kind_out"][kind]
        assert row["n"] == corpus.kinds.count(kind) == row["caught"]["n"]
        assert 0.0 <= row["caught"]["rate"] <= 1.0
    pooled = report["leave_one_kind_out_pooled"]
    assert pooled["n"] == sum(corpus.kinds.count(k) for k in kinds)
    # The thresholds keep at least 98% of the validation films, by construction.
    assert report["keep"]["val"]["all"]["rate"] >= 0.98 or report["keep"]["val"]["all"]["n"] < 50
    assert gate.spec.max_distance is not None and gate.spec.min_lung_side is not None


def test_thresholds_keep_at_least_98_percent_of_the_validation_films():
    rng = np.random.default_rng(0)
    lungs = [
        {"lung_area": a, "lung_left": a, "lung_right": b, "lung_balance": min(a, b) / max(a, b)}
        for a, b in zip(rng.uniform(0.1, 0.4, 300), rng.uniform(0.1, 0.4, 300), strict=True)
    ]
    p_frontal, distance = rng.beta(8, 1, 300), rng.gamma(5, 10, 300)
    chosen = gate_module.choose_thresholds(gate_module.GateSpec(), p_frontal, distance, lungs)
    kept = gate_module.learned_keep(chosen, p_frontal, distance, lungs)
    assert 0.98 <= kept.mean() < 1.0
    assert chosen.min_frontal <= 0.5 and chosen.max_distance < distance.max()


@pytest.fixture(scope="module")
def sample_bundle(tiny_bundle_with_lungs, tmp_path_factory, films):
    """The tiny bundle, recorded as trained on the sample films with CONFIG's split."""
    training = {"data_sha256": records_sha256(films), "config": CONFIG}
    path = tmp_path_factory.mktemp("gate") / "sample.safetensors"
    return bundle_with(tiny_bundle_with_lungs, path, training=training)


@pytest.fixture(scope="module")
def gated(sample_bundle, tmp_path_factory):
    """``python -m training gate`` on the sample bundle: its exit code, the bundle it wrote,
    its JSON report and what it printed."""
    folder = tmp_path_factory.mktemp("gated")
    out, report = folder / "gated.safetensors", folder / "gate.json"
    options = [
        "--epochs",
        "1",
        "--per-kind",
        "4",
        "--synthetic",
        "6",
        "--variants",
        "1",
        "--no-loko",
    ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            [
                *("gate", "--bundle", str(sample_bundle), "--manifest", str(SAMPLE_MANIFEST)),
                *("--not-cxr", str(NOT_CXR), "--out", str(out), "--json", str(report), *options),
            ]
        )
    return code, out, report, printed.getvalue()


def test_training_gate_command_writes_a_bundle_whose_predictions_are_assessed(sample_bundle, gated):
    code, out, report, printed = gated
    assert code == 0
    assert "Frontal films kept" in printed and f"wrote {out}" in printed
    gate = load_gate(out)
    assert gate is not None and gate.distance is not None
    assert gate.spec.metrics["keep"]["test"]["all"]["n"] > 0
    assert json.loads(report.read_text())["counts"]["frontal_cxr"]
    assert read_metadata(out).training == read_metadata(sample_bundle).training
    (result,) = load_bundle(out, device="cpu").predict([Image.new("L", (90, 90), 7)], cam=False)
    assert not result.assessment.assessable and "p_frontal_cxr" in result.assessment.scores


def test_a_retrained_bundle_carries_the_gate_network_refitted_with_the_radiologists_answers(
    gated, films, tmp_path
):
    _, source, _, _ = gated
    config = TrainConfig(
        archs=["mobilenet_v2", "vgg11_bn"],
        epochs=[1],
        strategy="features",
        init=str(source),
        input_size=64,
        batch_size=16,
        device="cpu",
        gate=str(source),
    )
    out = tmp_path / "retrained.safetensors"
    fit(films, out, config, progress=False, gate_frontal=films[:3], gate_refused=films[3:5])
    before, after = load_gate(source), load_gate(out)
    for key, value in before.net.state_dict().items():
        assert torch.equal(after.net.state_dict()[key], value), key
    assert not torch.equal(before.distance.mean, after.distance.mean)
    refit = after.spec.training["refit"]
    assert refit["assessable_after_all"] == 3
    assert refit["not_diagnostic"]["n"] == 2 and 0 <= refit["not_diagnostic"]["refused"] <= 2
    assert after.spec.max_distance is not None


def test_the_gate_command_refuses_films_the_bundle_was_not_trained_on(sample_bundle, tmp_path):
    other = tmp_path / "other.csv"
    rows = SAMPLE_MANIFEST.read_text().splitlines()
    other.write_text("\n".join(rows[:-1]) + "\n")  # one film fewer than the bundle had
    (tmp_path / "images").symlink_to(SAMPLE_MANIFEST.parent / "images")
    code = main(
        [
            "gate",
            "--bundle",
            str(sample_bundle),
            "--manifest",
            str(other),
            "--not-cxr",
            str(NOT_CXR),
            "--out",
            str(tmp_path / "x.safetensors"),
        ]
    )
    assert code == 2
