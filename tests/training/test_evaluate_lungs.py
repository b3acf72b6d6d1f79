"""The evaluation a reviewer can trust: where the model looked, adult non-COVID specificity,
the external table, and labels outside the bundle's classes scored only as not covid19."""

import json

import pytest

from tests.conftest import LUNGS_MANIFEST, SAMPLE_MANIFEST
from training.__main__ import main
from training.data.manifests import read_manifest
from training.ensemble.config import TrainConfig
from training.ensemble.fit import fit
from training.evaluation.evaluate import evaluate_bundle


@pytest.fixture(scope="module")
def mixed_records():
    cxr = list(read_manifest(SAMPLE_MANIFEST))[::4]  # 30 films of the four classes
    return cxr + read_manifest(LUNGS_MANIFEST)


def test_evaluate_adds_lung_adult_and_external_tables(tiny_bundle_with_lungs, mixed_records):
    report = evaluate_bundle(tiny_bundle_with_lungs, mixed_records, device="cpu")
    cxr_n = sum(r.source not in {"shenzhen", "montgomery"} for r in mixed_records)
    # Scored: the cxr films plus Shenzhen's normals; tuberculosis and Montgomery are not.
    assert report["n"] == cxr_n + 6
    assert report["unscored_labels"] == {"tuberculosis": 6}
    cam = report["lungs"]["cam_lung_fraction"]
    assert cam["all"]["n"] == len(mixed_records)
    assert 0.0 <= cam["all"]["q1"] <= cam["all"]["median"] <= cam["all"]["q3"] <= 1.0
    assert {"tuberculosis", "covid19", "normal"} <= set(cam["per_class"])
    assert {"kermany", "shenzhen", "montgomery"} <= set(cam["per_source"])
    assert report["lungs"]["lung_area_fraction"]["per_source"]["nih"]["n"] > 0
    adults = report["adult_non_covid"]
    adult_rows = [
        r
        for r in mixed_records
        if r.source != "kermany" and r.label != "covid19" and not r.external
    ]
    assert adults["all"]["n"] == len(adult_rows)
    assert "shenzhen/tuberculosis" in adults["per_source_label"]
    assert not any(key.startswith("kermany") for key in adults["per_source"])
    low, high = adults["all"]["ci"]
    assert low <= adults["all"]["rate"] <= high
    external = report["external"]
    assert external["note"] == "hospital never trained on"
    assert set(external["per_source_label"]) == {"montgomery/normal", "montgomery/tuberculosis"}
    assert external["per_source_label"]["montgomery/tuberculosis"]["not_covid19"]["n"] == 4
    assert "correct" in external["per_source_label"]["montgomery/normal"]
    assert "correct" not in external["per_source_label"]["montgomery/tuberculosis"]
    assert sum(external["per_source_label"]["montgomery/normal"]["called"].values()) == 4
    assert external["not_covid19"]["all"]["n"] == 8


def test_evaluate_without_a_segmenter_has_no_lung_tables(tiny_bundle, mixed_records):
    report = evaluate_bundle(tiny_bundle, mixed_records, device="cpu", cam=False)
    assert "lungs" not in report and "external" in report


def test_rows_that_cannot_be_scored_at_all_are_refused(tiny_bundle):
    montgomery = [r for r in read_manifest(LUNGS_MANIFEST) if r.external]
    with pytest.raises(ValueError, match="no rows to score"):
        evaluate_bundle(tiny_bundle, montgomery, device="cpu", cam=False)


def test_evaluate_command_rebuilds_the_bundles_own_test_split(tmp_path, capsys):
    bundle = tmp_path / "b.safetensors"
    cfg = TrainConfig(archs=["mobilenet_v3_small"], epochs=[1], input_size=32, device="cpu")
    meta = fit(read_manifest(SAMPLE_MANIFEST), bundle, cfg, progress=False)
    out = tmp_path / "r.json"
    argv = ["evaluate", "--bundle", str(bundle), "--test-split-of", str(SAMPLE_MANIFEST)]
    argv += ["--manifest", str(LUNGS_MANIFEST), "--json", str(out), "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "External: hospital never trained on" in printed
    assert "Adult non-COVID specificity" in printed
    report = json.loads(out.read_text())
    assert report["n"] == meta.metrics["ensemble"]["n"] + 6  # its test split + Shenzhen normals
    # The split's own rows, predicted the same way the training run did.
    assert (
        report["per_source"]["kermany"]["n"]
        == meta.metrics["ensemble"]["per_source"]["kermany"]["n"]
    )
    # Data the bundle was not trained on cannot stand in for its split...
    assert main(["evaluate", "--bundle", str(bundle), "--test-split-of", str(LUNGS_MANIFEST)]) == 2
    assert "not the data the bundle was trained on" in capsys.readouterr().err
    # ...and patients it trained on cannot be evaluated as if unseen.
    argv = ["evaluate", "--bundle", str(bundle), "--test-split-of", str(SAMPLE_MANIFEST)]
    assert main([*argv, "--manifest", str(SAMPLE_MANIFEST)]) == 2
    assert "trained the bundle" in capsys.readouterr().err


def test_a_bundle_tested_on_a_given_set_has_no_split_to_rebuild(tmp_path):
    from training.evaluation.evaluate import bundle_test_split

    records = read_manifest(SAMPLE_MANIFEST)
    held = sorted({r.patient_id for r in records if r.source == "kermany"})[:10]
    test = [r for r in records if r.patient_id in held]
    train = [r for r in records if r.patient_id not in held]
    cfg = TrainConfig(archs=["mobilenet_v3_small"], epochs=[1], input_size=32, device="cpu")
    fit(train, tmp_path / "b.safetensors", cfg, progress=False, test_records=test)
    with pytest.raises(ValueError, match="tested on a given set"):
        bundle_test_split(tmp_path / "b.safetensors", train)


def test_rows_that_trained_the_bundle_are_refused_by_patient_or_by_image(tmp_path):
    from dataclasses import replace

    from training.evaluation.evaluate import refuse_seen

    seen = read_manifest(SAMPLE_MANIFEST)[:5]
    with pytest.raises(ValueError, match="patient"):
        refuse_seen(seen, [seen[0]])
    renamed = replace(seen[1], patient_id="someone-else")  # the same film under a new id
    with pytest.raises(ValueError, match="image"):
        refuse_seen(seen, [renamed])
    refuse_seen(seen, read_manifest(LUNGS_MANIFEST))


def test_training_refuses_rows_marked_external(tmp_path, capsys):
    records = read_manifest(SAMPLE_MANIFEST) + read_manifest(LUNGS_MANIFEST)
    cfg = TrainConfig(archs=["mobilenet_v3_small"], epochs=[1], input_size=32, device="cpu")
    with pytest.raises(ValueError, match=r"8 row\(s\) are marked external \(montgomery\)"):
        fit(records, tmp_path / "b.safetensors", cfg, progress=False)
    assert not (tmp_path / "b.safetensors").exists()
    argv = ["train", "--manifest", str(LUNGS_MANIFEST), "--out", str(tmp_path / "c.safetensors")]
    assert main(argv) == 2
    assert "never trains the classifier" in capsys.readouterr().err
    assert not (tmp_path / "c.safetensors").exists()


def test_the_lungs_importer_marks_montgomery_external(tmp_path):
    out = tmp_path / "lungs.csv"
    assert main(["import", "lungs", str(LUNGS_MANIFEST.parent), "--out", str(out)]) == 0
    records = read_manifest(out)
    assert {r.source for r in records if r.external} == {"montgomery"}
    assert all(r.mask is not None and r.mask.is_file() for r in records)
    assert all(r.adult for r in records)


def test_the_importer_keeps_only_the_sources_asked_for(tmp_path, capsys):
    root = str(LUNGS_MANIFEST.parent)
    out = tmp_path / "shenzhen.csv"
    assert main(["import", "lungs", root, "--out", str(out), "--source", "shenzhen"]) == 0
    records = read_manifest(out)
    assert {r.source for r in records} == {"shenzhen"} and not any(r.external for r in records)
    assert main(["import", "lungs", root, "--out", str(out), "--source", "nowhere"]) == 2
    assert "no rows of source(s) nowhere" in capsys.readouterr().err
