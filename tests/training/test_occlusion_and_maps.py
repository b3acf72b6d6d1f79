"""Issue 26's honesty checks: empty heatmaps counted per member, the CAM lung share with
empty maps as 0, conformal coverage in the evaluation, and the occlusion check."""

import json

import numpy as np
import pytest

from classifier import DEFAULT_CLASSES
from tests.conftest import LUNGS_MANIFEST, SAMPLE_MANIFEST, bundle_with
from training.__main__ import main
from training.data.manifests import read_manifest
from training.evaluation.evaluate import evaluate_bundle
from training.evaluation.occlusion import occlude, occlusion_agreement

CLASSES = list(DEFAULT_CLASSES)


@pytest.fixture(scope="module")
def bundle_with_sets(tiny_bundle_with_lungs, tmp_path_factory):
    conformal = {"thresholds": {"0.90": dict.fromkeys(CLASSES, 0.7)}}
    path = tmp_path_factory.mktemp("sets") / "sets.safetensors"
    return bundle_with(tiny_bundle_with_lungs, path, conformal=conformal)


def test_occlude_keeps_the_lungs_and_greys_out_the_rest():
    film = np.linspace(0, 1, 40 * 60, dtype=np.float32).reshape(40, 60)
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:15, 5:25] = True  # the mask is at half the film's size
    out = np.asarray(occlude(film, mask), dtype=np.float32) / 255
    assert out.shape == film.shape
    assert np.allclose(out[10:30, 10:50], film[10:30, 10:50], atol=1 / 255)
    grey = np.median(film)
    assert np.allclose(out[:8], grey, atol=1 / 255) and np.allclose(out[:, :8], grey, atol=1 / 255)


def test_the_occlusion_check_reports_agreement_per_source(bundle_with_sets):
    records = read_manifest(SAMPLE_MANIFEST)[::6] + read_manifest(LUNGS_MANIFEST)[:4]
    result = occlusion_agreement(bundle_with_sets, records, device="cpu")
    counted = result["all"]["n"] + result["no_lungs_found"]
    assert counted == len(records) and result["all"]["n"] > 0
    assert sum(v["n"] for v in result["per_source"].values()) == result["all"]["n"]
    assert sum(result["changed"].values()) == result["all"]["n"] - result["all"]["k"]
    # The second way: the model input greyed out after the intensity step, same films.
    assert result["input"]["all"]["n"] == result["all"]["n"]
    moved = result["input"]["all"]["n"] - result["input"]["all"]["k"]
    assert sum(result["input"]["changed"].values()) == moved


def test_lungs_only_greys_the_model_input_outside_the_predicted_lungs(bundle_with_sets):
    import torch

    from classifier import load_bundle
    from training.data.datasets import load_gray

    predictor = load_bundle(bundle_with_sets, device="cpu")
    films = [load_gray(r.path) for r in read_manifest(SAMPLE_MANIFEST)[:2]]
    seen = []
    original = predictor.members[0].body
    predictor.members[0].body = lambda batch: seen.append(batch.clone()) or original(batch)
    predictor.predict(films, cam=False)
    predictor.lungs_only = True
    predictor.predict(films, cam=False)
    plain, greyed = seen
    outside = greyed == 0
    assert outside.any() and (~outside).any()  # the normalised mean: 0 outside the lungs
    assert torch.equal(greyed[~outside], plain[~outside])


def test_the_occlusion_check_needs_a_segmenter(tiny_bundle):
    with pytest.raises(ValueError, match="lung segmenter"):
        occlusion_agreement(tiny_bundle, read_manifest(SAMPLE_MANIFEST)[:2], device="cpu")


def test_evaluation_counts_empty_maps_per_member_and_conformal_coverage(bundle_with_sets):
    records = read_manifest(SAMPLE_MANIFEST)[::5]
    report = evaluate_bundle(bundle_with_sets, records, device="cpu")
    empty = report["empty_maps"]
    assert {"mobilenet", "vgg", "fused"} <= set(empty)
    assert all(empty[k]["all"]["n"] == len(records) for k in ("mobilenet", "vgg", "fused"))
    zeroed = empty["cam_lung_fraction_empty_as_zero"]
    plain = report["lungs"]["cam_lung_fraction"]["all"]
    assert zeroed["n"] >= plain["n"] and zeroed["median"] <= plain["median"] + 1e-9
    coverage = report["conformal_coverage"]["0.90"]
    assert coverage["all"]["n"] == len(records)
    assert set(coverage["source"]) == {r.source for r in records}


def test_the_evaluate_command_runs_the_occlusion_check(bundle_with_sets, tmp_path, capsys):
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--bundle", str(bundle_with_sets), "--device", "cpu", "--occlusion"]
    argv += ["--manifest", str(SAMPLE_MANIFEST), "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Occlusion check" in printed and "Empty heatmaps" in printed
    assert "Conformal coverage" in printed
    assert json.loads(out.read_text())["occlusion"]["all"]["n"] > 0
