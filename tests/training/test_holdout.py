import json
from pathlib import Path

import pytest

from tests.conftest import LUNGS_MANIFEST, SAMPLE_MANIFEST
from training.__main__ import main
from training.data.manifests import Record, read_manifest
from training.ensemble.config import TrainConfig
from training.evaluation import holdout


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


def _run(seed: int, groups: dict[str, tuple[int, int, int, int]], size: int = 112) -> dict:
    """A leave-one-hospital-out result as cv writes it: group -> (found, covid19, spec k, n)."""
    from training.evaluation.holdout import _pooled
    from training.evaluation.metrics import wilson_ci

    def r(k, n):
        return {"n": n, "k": k, "rate": k / n, "ci": wilson_ci(k, n)}

    rows = [
        {"group": g, "covid19_sensitivity": r(k, n), "test_specificity": r(sk, sn), "seconds": 1}
        for g, (k, n, sk, sn) in groups.items()
    ]
    return {
        "by": "location",
        "min_covid": 14,
        "groups": rows,
        "pooled": _pooled(rows),
        "config": {"seed": seed, "input_size": size},
        "device": "cpu",
        "bf16": True,
        "machine": {"cpu": "test"},
        "seconds": len(rows),
    }


def test_a_run_made_in_parts_is_pooled_again_and_refuses_overlaps_or_other_recipes():
    from training.evaluation.holdout import holdout_merge

    a = _run(0, {"Germany": (50, 72, 90, 100)})
    b = _run(0, {"Italy": (36, 72, 80, 100), "China": (31, 31, 100, 100)})
    merged = holdout_merge([a, b])
    assert [g["group"] for g in merged["groups"]] == ["Germany", "Italy", "China"]
    assert merged["pooled"]["covid19_sensitivity"]["k"] == 117
    assert merged["pooled"]["covid19_sensitivity"]["n"] == 175
    assert merged["pooled"]["worst_group_sensitivity"] == 0.5
    assert merged["pooled"]["min_test_specificity"] == 0.8
    assert [p["groups"] for p in merged["parts"]] == [["Germany"], ["Italy", "China"]]
    with pytest.raises(ValueError, match="more than one part: Germany"):
        holdout_merge([a, a])
    with pytest.raises(ValueError, match="recipe: input_size"):
        holdout_merge([a, _run(0, {"Italy": (1, 2, 1, 2)}, size=224)])
    with pytest.raises(ValueError, match="recipe: seed"):
        holdout_merge([a, _run(1, {"Italy": (1, 2, 1, 2)})])


def test_seeds_are_summed_per_group_and_the_worst_group_is_taken_after():
    from training.evaluation.holdout import holdout_over_seeds

    runs = [
        _run(0, {"Germany": (40, 72, 95, 100), "Italy": (60, 72, 90, 100)}),
        _run(1, {"Italy": (20, 72, 85, 100), "Germany": (50, 72, 99, 100)}),
    ]
    over = holdout_over_seeds(runs)
    by_group = {g["group"]: g for g in over["groups"]}
    assert by_group["Germany"]["covid19_sensitivity"]["k"] == 90
    assert by_group["Germany"]["covid19_sensitivity"]["n"] == 144
    assert by_group["Germany"]["per_seed"] == [40 / 72, 50 / 72]
    # Italy: 0.833 then 0.278, so 80/144 over both seeds, below Germany's 90/144.
    assert over["pooled"]["worst_group_sensitivity"] == 80 / 144
    assert over["pooled"]["covid19_sensitivity"]["k"] == 170
    assert over["pooled"]["min_test_specificity"] == 0.85
    assert over["pooled"]["mean_test_specificity"] == pytest.approx((0.95 + 0.9 + 0.85 + 0.99) / 4)
    assert over["seeds"] == [0, 1] and "seed" not in over["config"]
    with pytest.raises(ValueError, match="same groups"):
        holdout_over_seeds([runs[0], _run(2, {"Germany": (1, 2, 1, 2)})])
    with pytest.raises(ValueError, match="seed appears twice"):
        holdout_over_seeds([runs[0], runs[0]])
    with pytest.raises(ValueError, match="recipe: input_size"):
        holdout_over_seeds([runs[0], _run(3, {"Germany": (1, 2, 1, 2)}, size=224)])
