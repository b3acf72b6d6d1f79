import json

import pytest
import torch

from classifier import load_bundle, read_metadata
from classifier.bundle import load_bundle_members
from tests.conftest import SAMPLE_MANIFEST
from training.__main__ import main
from training.data.manifests import read_manifest
from training.ensemble.config import TrainConfig
from training.ensemble.fit import fit
from training.ensemble.loop import group_weights
from training.evaluation.metrics import REPORT_KEYS

FAST = {"input_size": 32, "batch_size": 16, "device": "cpu"}


def test_fit_trains_calibrates_and_stores_test_metrics_in_the_bundle(tmp_path):
    records = read_manifest(SAMPLE_MANIFEST)
    config = TrainConfig(archs=["mobilenet_v3_small", "vgg11_bn"], epochs=[2], **FAST)
    meta = fit(records, tmp_path / "b.safetensors", config, progress=False)
    stored = read_metadata(tmp_path / "b.safetensors")
    assert stored == meta
    assert [m.arch for m in stored.members] == ["mobilenet_v3_small", "vgg11_bn"]
    assert sum(m.weight for m in stored.members) == pytest.approx(1.0)
    assert all(m.temperature > 0 for m in stored.members) and stored.ensemble_temperature > 0
    assert set(stored.decision_thresholds) <= {"covid19"}
    assert stored.metrics["split"] == "test"
    ensemble = stored.metrics["ensemble"]
    assert ensemble["n"] == stored.training["splits"]["test"]["images"]
    assert set(ensemble["per_source"]) <= {"ieee8023", "kermany", "nih"}
    assert set(stored.metrics["binary"]) == {"normal_vs_pneumonia_auc", "bacterial_vs_viral_auc"}
    assert stored.training["data_sha256"] and stored.training["config"]["seed"] == 0
    assert stored.training["config"]["hflip"] is False
    assert set(stored.training["history"]) == {"mobilenet", "vgg"}
    assert load_bundle(tmp_path / "b.safetensors", device="cpu").classes == stored.classes


def test_cached_feature_strategy_trains_only_the_heads_of_a_bundles_members(tmp_path, tiny_bundle):
    records = read_manifest(SAMPLE_MANIFEST)
    config = TrainConfig(
        archs=["mobilenet_v2", "vgg11_bn"],
        epochs=[3],
        strategy="features",
        init=str(tiny_bundle),
        **{**FAST, "input_size": 64},
    )
    fit(records, tmp_path / "heads.safetensors", config, progress=False)
    _, before = load_bundle_members(tiny_bundle)
    _, after = load_bundle_members(tmp_path / "heads.safetensors")
    for name in ("mobilenet", "vgg"):
        old, new = before[name].state_dict(), after[name].state_dict()
        backbone = [k for k in old if k.startswith("features.")]
        head = [k for k in old if k.startswith("classifier.") and k.endswith("weight")]
        assert all(torch.allclose(old[k].float(), new[k].float(), atol=1e-3) for k in backbone)
        assert not all(torch.equal(old[k], new[k]) for k in head)


def test_layer_cutoff_freezes_the_first_blocks_with_source_balanced_sampling(tmp_path, tiny_bundle):
    records = read_manifest(SAMPLE_MANIFEST)
    config = TrainConfig(
        archs=["mobilenet_v2"],
        epochs=[1],
        strategy="freeze",
        freeze_layers=4,
        init=str(tiny_bundle),
        balance="source",
        **{**FAST, "input_size": 64},
    )
    fit(records, tmp_path / "cut.safetensors", config, progress=False)
    _, before = load_bundle_members(tiny_bundle)
    _, after = load_bundle_members(tmp_path / "cut.safetensors")
    old, new = before["mobilenet"].state_dict(), after["mobilenet"].state_dict()
    assert torch.equal(old["features.0.0.weight"], new["features.0.0.weight"])
    assert torch.equal(old["features.3.conv.0.0.weight"], new["features.3.conv.0.0.weight"])
    assert not torch.equal(old["features.17.conv.0.0.weight"], new["features.17.conv.0.0.weight"])


def test_a_locked_test_set_may_not_share_patients_with_training(tmp_path):
    records = read_manifest(SAMPLE_MANIFEST)
    config = TrainConfig(archs=["mobilenet_v3_small"], epochs=[1], **FAST)
    with pytest.raises(ValueError, match="also in the training data"):
        fit(records, tmp_path / "x.safetensors", config, test_records=records[:5])


def test_source_balance_gives_classes_equal_mass_and_lifts_rare_sources_within_a_class():
    # Class 0: 90 images from hospital a, 10 from b; class 1: 40 from a.
    targets = torch.tensor([0] * 100 + [1] * 40)
    sources = ["a"] * 90 + ["b"] * 10 + ["a"] * 40
    weights = group_weights(targets, sources, power=0.5)
    assert weights[:100].sum() == pytest.approx(weights[100:].sum())
    # sqrt(10) / (sqrt(90) + sqrt(10)) = 0.25 of class 0's mass goes to b (plain: 0.10).
    assert weights[90:100].sum() / weights[:100].sum() == pytest.approx(0.25)
    assert weights[90] / weights[0] == pytest.approx(3.0)
    # power 0 is plain class balance, power 1 equal mass per source within a class.
    plain = group_weights(targets, sources, power=0.0)
    assert plain[90] == pytest.approx(plain[0])
    equal = group_weights(targets, sources, power=1.0)
    assert equal[90:100].sum() == pytest.approx(equal[:90].sum())


def test_config_rejects_unknown_strategies_and_mismatched_epochs():
    with pytest.raises(ValueError, match="balance"):
        TrainConfig(balance="magic")
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(strategy="magic")
    with pytest.raises(ValueError, match="epoch"):
        TrainConfig(archs=["a", "b", "c"], epochs=[1, 2])


def test_cli_evaluate_writes_exactly_the_report_keys_and_plots(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = main(
        [
            "evaluate",
            "--bundle",
            str(tiny_bundle),
            "--manifest",
            str(SAMPLE_MANIFEST),
            "--json",
            str(out),
            "--plots",
            str(tmp_path / "plots"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    # The sample has adults that are not covid19, no external rows and no unknown labels, and
    # the tiny bundle no segmenter and no prediction sets: no "external", "lungs" or
    # "conformal_coverage" section; every member's empty heatmaps are counted.
    assert list(report) == [
        *REPORT_KEYS,
        "per_source",
        "unscored_labels",
        "empty_maps",
        "adult_non_covid",
    ]
    assert report["unscored_labels"] == {}
    assert report["n"] == 119
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion_matrix.png",
        "reliability.png",
        "roc.png",
    ]
    assert "covid19 vs rest" in capsys.readouterr().out


def test_cli_reports_a_bad_manifest_with_exit_code_2(tmp_path, capsys):
    code = main(["train", "--manifest", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "manifest not found" in capsys.readouterr().err
