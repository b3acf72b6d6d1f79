import json
from pathlib import Path

import pytest

from tests.conftest import LUNGS_MANIFEST, SAMPLE_MANIFEST
from training import holdout
from training.__main__ import main
from training.config import TrainConfig
from training.data import Record, read_manifest


def _record(source, label, patient, location=""):
    return Record(Path(f"{patient}.jpg"), label, patient, source=source, location=location)


def test_a_film_is_held_out_with_its_country_or_its_whole_collection():
    assert holdout.location_group(_record("figure1", "covid19", "f1")) == "figure1"
    assert holdout.location_group(_record("actualmed", "normal", "a1")) == "actualmed"
    hannover = "Hannover Medical School, Hannover, Germany"
    assert holdout.location_group(_record("ieee8023", "normal", "i1", hannover)) == (
        "ieee8023/Germany"
    )
    assert holdout.location_group(_record("ieee8023", "covid19", "i2")) is None
    # Another hospital's collection in the same country is not held out with it.
    guangzhou = "Guangzhou Women and Children's Medical Center, Guangzhou, China"
    assert holdout.location_group(_record("kermany", "normal", "k1", guangzhou)) is None


def test_only_groups_with_enough_covid19_films_are_held_out_largest_first():
    records = read_manifest(SAMPLE_MANIFEST) + [
        _record("figure1", "covid19", f"f{i}") for i in range(3)
    ]
    groups = holdout.holdout_groups(records, min_covid=2)
    assert list(groups) == ["ieee8023/Germany", "figure1", "ieee8023/Philippines"]
    germany = groups["ieee8023/Germany"]
    assert {r.label for r in germany} == {"covid19", "normal"}  # whatever their label
    assert all(r.location.endswith("Germany") for r in germany)
    assert list(holdout.holdout_groups(records, min_covid=5)) == ["ieee8023/Germany"]


def test_no_held_out_patient_trains_the_model_that_scores_them(monkeypatch, tmp_path):
    records = read_manifest(SAMPLE_MANIFEST)
    seen = {}

    def fake_fit(rest, bundle, cfg, **_):
        seen["rest"] = rest

    def fake_score(*, name, held, test, bundle, cfg):
        seen[name] = (held, test)
        return {"group": name, "covid19_sensitivity": None, "test_specificity": None}

    monkeypatch.setattr(holdout, "fit", fake_fit)
    monkeypatch.setattr(holdout, "score_group", fake_score)
    cfg = TrainConfig(archs=["mobilenet_v3_small"], epochs=[1])
    result = holdout.leave_group_out(
        records, cfg, groups=["ieee8023/Germany"], min_covid=2, progress=False
    )
    held, test = seen["ieee8023/Germany"]
    held_patients = {r.patient_id for r in held}
    assert held_patients and not held_patients & {r.patient_id for r in seen["rest"]}
    assert not held_patients & {r.patient_id for r in test}
    assert {r.path for r in test} <= {r.path for r in seen["rest"]}
    assert [g["group"] for g in result["groups"]] == ["ieee8023/Germany"]


def test_unknown_groups_and_external_rows_are_refused_before_training():
    records = read_manifest(SAMPLE_MANIFEST)
    cfg = TrainConfig(archs=["mobilenet_v3_small"], epochs=[1])
    with pytest.raises(ValueError, match="no such group"):
        holdout.leave_group_out(records, cfg, groups=["ieee8023/Mars"], min_covid=2)
    unlocated = [r for r in records if r.source != "ieee8023"]
    with pytest.raises(ValueError, match="need a location column"):
        holdout.leave_group_out(unlocated, cfg, min_covid=2)
    with pytest.raises(ValueError, match="never trains the classifier"):
        holdout.leave_group_out(records + read_manifest(LUNGS_MANIFEST), cfg, min_covid=2)


def test_the_cv_command_holds_out_a_country_and_reports_sensitivity_and_coverage(tmp_path, capsys):
    out = tmp_path / "holdout.json"
    argv = ["cv", "--by", "location", "--manifest", str(SAMPLE_MANIFEST), "--json", str(out)]
    argv += ["--groups", "ieee8023/Philippines", "--min-covid", "2"]
    argv += ["--arch", "mobilenet_v3_small", "--epochs", "1", "--input-size", "32"]
    argv += ["--device", "cpu", "--no-augment"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ieee8023/Philippines" in printed and "covid19 found" in printed
    result = json.loads(out.read_text())
    (group,) = result["groups"]
    assert group["n"] == 2 and group["labels"] == {"covid19": 2}
    assert group["covid19_sensitivity"]["n"] == 2
    missed = sum(group["missed_called"].values())
    assert missed == 2 - group["covid19_sensitivity"]["k"]
    assert group["test_specificity"]["n"] > 0
    assert set(group["coverage"]["held"]) == {"0.90", "0.95"}
    assert result["pooled"]["covid19_sensitivity"]["n"] == 2
