import json

from classifier import load_bundle, read_metadata
from tests.conftest import SAMPLE_MANIFEST
from training.__main__ import main
from training.data import read_manifest
from training.loop import TrainConfig, fit


def test_fit_trains_every_member_and_stores_test_metrics_in_the_bundle(tmp_path):
    records = read_manifest(SAMPLE_MANIFEST)
    config = TrainConfig(
        archs=["mobilenet_v3_small", "vgg11_bn"],
        epochs=[1, 1],
        input_size=32,
        batch_size=16,
        device="cpu",
    )
    meta = fit(records, tmp_path / "b.safetensors", config, progress=False)
    stored = read_metadata(tmp_path / "b.safetensors")
    assert stored == meta
    assert [m.arch for m in stored.members] == ["mobilenet_v3_small", "vgg11_bn"]
    assert stored.metrics["split"] == "test"
    ensemble = stored.metrics["ensemble"]
    assert ensemble["n"] == stored.training["splits"]["test"]["images"]
    assert set(ensemble["per_source"]) <= {"ieee8023", "kermany", "nih"}
    assert stored.training["data_sha256"] and stored.training["config"]["seed"] == 0
    assert set(stored.training["history"]) == {"mobilenet", "vgg"}
    predictor = load_bundle(tmp_path / "b.safetensors", device="cpu")
    assert predictor.classes == stored.classes


def test_cli_evaluate_writes_a_json_report(tiny_bundle, tmp_path, capsys):
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
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["n"] == 119
    assert {"accuracy", "macro_auc", "per_class", "confusion_matrix", "per_source"} <= set(report)
    assert "accuracy=" in capsys.readouterr().out


def test_cli_reports_a_bad_manifest_with_exit_code_2(tmp_path, capsys):
    code = main(["train", "--manifest", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "manifest not found" in capsys.readouterr().err
