"""Issue 14's training options: partial labels, rendering augmentation, the canonical
intensity and crop in training, weight EMA, and the lever runner."""

import json

import numpy as np
import pytest
import torch

from classifier import DEFAULT_CLASSES, read_metadata
from tests.conftest import LUNGS_MANIFEST, SAMPLE_MANIFEST
from training.__main__ import main
from training.data.datasets import RenderAugment, XrayDataset, target_index
from training.data.manifests import PARTIAL, read_manifest
from training.ensemble.config import TrainConfig
from training.ensemble.fit import fit
from training.ensemble.objectives import PartialLoss, class_weights
from training.evaluation.evaluate import bundle_test_split
from training.evaluation.levers import parse_setting

FAST = {"input_size": 32, "batch_size": 16, "device": "cpu"}
CLASSES = list(DEFAULT_CLASSES)


def test_partial_loss_pushes_covid19_down_without_choosing_among_the_others():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.5, 0.1, 0.2, 0.3]], requires_grad=True)
    targets = torch.tensor([PARTIAL, 3])
    loss = PartialLoss(covid=0)(logits, targets)
    p = logits.softmax(1)
    expected = (-torch.log(1 - p[0, 0]) - torch.log(p[1, 3])) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    grad = logits.grad[0]
    assert grad[0] > 0  # gradient descent lowers the covid19 logit
    # ...and moves the other three together, in proportion to their probabilities.
    others = p[0, 1:].detach()
    assert torch.allclose(-grad[1:] / others, (-grad[1:] / others)[0].expand(3), rtol=1e-4)


def test_partial_rows_do_not_count_in_class_weights_and_need_a_declared_label():
    targets = torch.tensor([0, 0, 1, PARTIAL, PARTIAL, PARTIAL])
    weights = class_weights(targets, 2)
    assert weights.tolist() == pytest.approx([0.75, 1.5])
    assert target_index("tuberculosis", CLASSES, ("tuberculosis",)) == PARTIAL
    with pytest.raises(ValueError, match="neither a class"):
        target_index("tuberculosis", CLASSES)


def test_render_augment_keeps_shape_and_range_and_changes_the_film():
    torch.manual_seed(0)
    image = torch.rand(1, 48, 48)
    out = [RenderAugment(p=1.0)(image) for _ in range(3)]
    assert all(o.shape == image.shape and o.min() >= 0.0 and o.max() <= 1.0 for o in out)
    assert all(not torch.allclose(o, image) for o in out)
    assert torch.equal(RenderAugment(p=0.0)(image), image)


def test_datasets_crop_to_the_lungs_and_equalize_with_the_shipped_segmenter():
    from classifier import DEFAULT_BUNDLE
    from classifier.bundle import load_segmenter
    from classifier.preprocess import to_gray_array
    from training.data.datasets import film_boxes, load_gray

    records = read_manifest(LUNGS_MANIFEST)[:4]
    segmenter = load_segmenter(DEFAULT_BUNDLE)
    arrays = [to_gray_array(load_gray(r.path)) for r in records]
    for array, (top, bottom, left, right) in zip(
        arrays, film_boxes(arrays, "lungs", segmenter=segmenter), strict=True
    ):
        area = (bottom - top) * (right - left) / array.size
        assert 0.2 < area < 0.95  # the lung fields and a margin, not the neck and the belly
    options = {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    labels = ("tuberculosis",)
    whole = XrayDataset(records, CLASSES, not_covid_labels=labels, **options)
    cropped = XrayDataset(
        records,
        CLASSES,
        not_covid_labels=labels,
        crop="lungs",
        segmenter=segmenter,
        intensity="equalize",
        **options,
    )
    assert not torch.equal(whole.images, cropped.images)
    image, _ = cropped[0]
    levels = image[0] * 0.25 + 0.5
    assert abs(float(levels.mean()) - 0.5) < 0.05  # equalized
    assert set(cropped.targets.tolist()) <= {PARTIAL, CLASSES.index("normal")}


def test_fit_with_shenzhen_tuberculosis_as_partial_labels_ema_and_equalisation(tmp_path):
    lungs = [r for r in read_manifest(LUNGS_MANIFEST) if not r.external]
    records = read_manifest(SAMPLE_MANIFEST) + lungs
    config = TrainConfig(
        archs=["mobilenet_v3_small"],
        epochs=[2],
        not_covid_labels=["tuberculosis"],
        intensity="equalize",
        crop="content",
        render=True,
        ema=0.9,
        **FAST,
    )
    path = tmp_path / "b.safetensors"
    meta = fit(records, path, config, progress=False)
    stored = read_metadata(path)
    assert stored.classes == CLASSES and (stored.intensity, stored.crop) == ("equalize", "content")
    splits = stored.training["splits"]
    assert "tuberculosis" in splits["train"]["labels"]
    assert "tuberculosis" not in splits["val"]["labels"] | splits["test"]["labels"]
    assert meta.metrics["ensemble"]["n"] == splits["test"]["images"]
    # The rebuilt test split has its tuberculosis films back, for the not-covid19 tables.
    _, test = bundle_test_split(path, records)
    assert len(test) >= splits["test"]["images"]


def test_config_refuses_a_lung_crop_without_segmenter_and_bad_options():
    with pytest.raises(ValueError, match="segmenter"):
        TrainConfig(crop="lungs")
    for bad in ({"intensity": "clahe"}, {"crop": "heart"}, {"ema": 1.0}, {"crop_margin": 2.0}):
        with pytest.raises(ValueError):  # noqa: PT011 (a message of its own for each)
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="also classes"):
        TrainConfig(classes=CLASSES, not_covid_labels=["normal"])


def test_parse_setting_reads_typed_config_changes():
    name, changes = parse_setting("eq:intensity=equalize,render=1,ema=0.99,shenzhen=all")
    assert name == "eq"
    assert changes == {"intensity": "equalize", "render": True, "ema": 0.99, "shenzhen": "all"}
    assert parse_setting("base:") == ("base", {})
    assert parse_setting("tb:not_covid_labels=tuberculosis")[1] == {
        "not_covid_labels": ["tuberculosis"]
    }
    for bad in ("nameless", ":x=1", "x:bogus=1", "x:shenzhen=some", "x:render=maybe"):
        if bad == "nameless":
            assert parse_setting(bad) == ("nameless", {})
            continue
        with pytest.raises(ValueError):  # noqa: PT011 (a message of its own for each)
            parse_setting(bad)


def test_levers_command_trains_each_setting_per_seed_and_judges_the_same_rows(
    tmp_path, capsys, tiny_bundle_with_lungs
):
    out = tmp_path / "levers.json"
    code = main(
        [
            "levers",
            "--manifest",
            str(SAMPLE_MANIFEST),
            "--lungs",
            str(LUNGS_MANIFEST),
            "--segmenter",
            str(tiny_bundle_with_lungs),
            "--setting",
            "as-is:",
            "--setting",
            "all:intensity=equalize,crop=lungs,shenzhen=all",
            "--seeds",
            "0",
            "--arch",
            "mobilenet_v3_small",
            "--epochs",
            "1",
            "--input-size",
            "32",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "| as-is | 1 |" in table and "| all | 1 |" in table
    result = json.loads(out.read_text())
    runs = {r["setting"]: r for r in result["runs"]}
    assert result["machine"]["cpu"] and isinstance(result["machine"]["avx512_bf16"], bool)
    assert runs["all"]["train_images"] > runs["as-is"]["train_images"]
    for run in runs.values():
        assert 0.0 <= run["external_not_covid"] <= 1.0
        # None where a one-epoch model's Grad-CAM is all zero; a share otherwise.
        for part in ("test", "shenzhen", "external"):
            value = run[f"{part}_cam_lung_median"]
            assert value is None or 0.0 <= value <= 1.0
        assert run["shenzhen_tb_not_covid"] is not None
        assert np.isfinite(run["macro_auc"] or 0.0)


def test_train_command_wires_the_issue_14_options_into_the_bundle(tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    argv = ["train", "--manifest", str(SAMPLE_MANIFEST), "--out", str(out)]
    argv += ["--arch", "mobilenet_v3_small", "--epochs", "1", "--input-size", "32"]
    argv += ["--intensity", "equalize", "--crop", "content", "--render", "--ema", "0.9"]
    argv += ["--not-covid-labels", "tuberculosis", "--device", "cpu"]
    assert main(argv) == 0
    meta = read_metadata(out)
    config = meta.training["config"]
    assert (meta.intensity, meta.crop) == ("equalize", "content")
    assert config["render"] is True and config["ema"] == 0.9
    assert config["not_covid_labels"] == ["tuberculosis"]
    assert main([*argv[:5], "--crop", "lungs"]) == 2  # no segmenter given
    assert "needs a lung segmenter" in capsys.readouterr().err
