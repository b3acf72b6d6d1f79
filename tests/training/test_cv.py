import json

from classifier import DEFAULT_CLASSES
from tests.conftest import SAMPLE_MANIFEST
from training.__main__ import main
from training.data.manifests import read_manifest
from training.evaluation.cv import patient_folds, pooled_with_intervals


def test_folds_hold_whole_patients_and_spread_every_label():
    records = read_manifest(SAMPLE_MANIFEST)
    folds = patient_folds(records, 5, seed=0)
    assert sorted(r.path for f in folds for r in f) == sorted(r.path for r in records)
    patients = [{r.patient_id for r in f} for f in folds]
    assert all(not (a & b) for i, a in enumerate(patients) for b in patients[i + 1 :])
    for fold in folds:
        assert {r.label for r in fold} == {r.label for r in records}
        assert abs(len(fold) - len(records) / 5) <= 4


def test_cv_refuses_external_rows_before_training_anything(tmp_path):
    import pytest

    from tests.conftest import LUNGS_MANIFEST
    from training.ensemble.config import TrainConfig
    from training.evaluation.cv import cross_validate

    records = read_manifest(SAMPLE_MANIFEST) + read_manifest(LUNGS_MANIFEST)
    with pytest.raises(ValueError, match="never trains the classifier"):
        cross_validate(records, TrainConfig(archs=["mobilenet_v3_small"], epochs=[1]), folds=2)


def test_bootstrap_intervals_bracket_the_pooled_values():
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    probs = rng.dirichlet(np.ones(4), 200)
    probs[np.arange(200), y] += 0.5
    probs /= probs.sum(1, keepdims=True)
    pooled = pooled_with_intervals(
        y,
        probs,
        probs.argmax(1),
        [f"p{i // 2}" for i in range(200)],
        list(DEFAULT_CLASSES),
        n_boot=200,
    )
    for key in ("covid19_sensitivity", "covid19_specificity", "covid19_auc", "macro_auc"):
        low, high = pooled[key]["ci"]
        assert low <= pooled[key]["value"] <= high and high - low > 0


def test_cv_command_pools_out_of_fold_predictions_with_intervals(tmp_path, capsys):
    out = tmp_path / "cv.json"
    argv = ["cv", "--manifest", str(SAMPLE_MANIFEST), "--folds", "2", "--json", str(out)]
    argv += ["--arch", "mobilenet_v3_small", "--epochs", "1", "--input-size", "32"]
    argv += ["--device", "cpu", "--bootstrap", "100"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2-fold patient-grouped cross-validation" in printed and "covid19 sensitivity" in printed
    result = json.loads(out.read_text())
    records = read_manifest(SAMPLE_MANIFEST)
    assert result["pooled"]["n"] == len(records)
    assert result["pooled"]["covid19"] == sum(r.label == "covid19" for r in records)
    assert [f["fold"] for f in result["per_fold"]] == [1, 2]
    assert sum(f["n"] for f in result["per_fold"]) == len(records)
    assert result["seconds"] > 0 and result["config"]["archs"] == ["mobilenet_v3_small"]
    assert set(result["machine"]) == {"cpu", "cores", "amx", "avx512_bf16"}
    per_source = result["per_source"]
    assert set(per_source) == {r.source for r in records}
    assert sum(e["n"] for e in per_source.values()) == len(records)
    for source, e in per_source.items():
        mine = [r for r in records if r.source == source]
        assert e["accuracy"]["n"] == len(mine)
        covid = sum(r.label == "covid19" for r in mine)
        assert (e["covid19_sensitivity"] or {"n": 0})["n"] == covid
        assert (e["not_covid19"] or {"n": 0})["n"] == len(mine) - covid
    assert "| source | films | accuracy |" in printed
    low, high = result["pooled"]["macro_auc"]["ci"]
    assert low <= result["pooled"]["macro_auc"]["value"] <= high
