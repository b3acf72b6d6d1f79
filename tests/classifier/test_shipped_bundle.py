"""The committed model: real metadata, and real skill on sample images it never saw."""

import csv

from PIL import Image

from classifier import DEFAULT_BUNDLE, load_bundle, read_metadata
from tests.conftest import CLASSES, SAMPLE_DIR, SAMPLE_MANIFEST


def test_default_bundle_metadata_describes_members_data_and_test_metrics():
    meta = read_metadata(DEFAULT_BUNDLE)
    assert meta.classes == CLASSES
    assert [(m.name, m.arch) for m in meta.members] == [
        ("mobilenet", "mobilenet_v2"),
        ("vgg", "vgg11_bn"),
    ]
    assert meta.input_size == 224 and len(meta.mean) == len(meta.std) == 3
    assert meta.created_at
    splits = meta.training["splits"]
    assert splits["train"]["patients"] > splits["test"]["patients"] > 100
    assert len(meta.training["data_sha256"]) == 64
    ensemble = meta.metrics["ensemble"]
    assert meta.metrics["split"] == "test" and ensemble["n"] == splits["test"]["images"]
    assert set(ensemble["per_class"]) == set(CLASSES)
    assert {"kermany", "nih", "ieee8023", "shenzhen"} <= set(ensemble["per_source"])
    assert (meta.intensity, meta.crop) == ("equalize", "content")
    assert "tuberculosis" in meta.training["config"]["not_covid_labels"]


def test_default_bundle_beats_chance_clearly_on_unseen_sample_patients():
    rows = [r for r in csv.DictReader(SAMPLE_MANIFEST.open()) if r["split"] == "test"]
    predictor = load_bundle(DEFAULT_BUNDLE, device="cpu")
    results = predictor.predict([Image.open(SAMPLE_DIR / r["file"]) for r in rows], cam=False)
    correct = sum(res.label == row["label"] for res, row in zip(results, rows, strict=True))
    # 46 images, 30 of them bacterial pneumonia (always saying it would score 0.652). Measured
    # 0.826 (38/46) when this 224 px bundle shipped (the 160 px one: 0.804); the margin is for
    # fp32 against bf16.
    assert correct / len(rows) >= 0.72


def test_default_bundle_looks_at_the_lungs_of_unseen_sample_films():
    """The shipped bundle trained with the penalty on Grad-CAM outside the lungs: on the
    sample's test films its fused heatmap keeps most of its mass inside the predicted lungs
    (chance is the lungs' share of the film, about a quarter)."""
    import numpy as np

    meta = read_metadata(DEFAULT_BUNDLE)
    assert meta.training["config"]["cam_lungs"] > 0
    rows = [r for r in csv.DictReader(SAMPLE_MANIFEST.open()) if r["split"] == "test"]
    predictor = load_bundle(DEFAULT_BUNDLE, device="cpu")
    results = predictor.predict([Image.open(SAMPLE_DIR / r["file"]) for r in rows], cam=True)
    # An empty map counts as 0: evidence hidden is not evidence in the lungs.
    fractions = [r.cam_lung_fraction or 0.0 for r in results]
    assert sum(r.cam_lung_fraction is None for r in results) <= 1
    # Measured 0.988 (46 of 46 films with a non-empty map, bf16) when this 224 px bundle
    # shipped; the 160 px one 0.853; the one whose penalty let a map be empty for free, 0.970
    # over 43 films; the first bundle's was near chance. Issue 26's target is 0.70; the margin
    # is for other CPUs.
    assert float(np.median(fractions)) >= 0.80


def test_default_bundle_ships_the_lung_segmenter_with_its_measured_dice():
    seg = read_metadata(DEFAULT_BUNDLE).segmenter
    assert seg["arch"] == "unet" and seg["input_size"] == 128
    assert seg["config"]["widths"] == [16, 32, 64, 128]
    test = seg["metrics"]["test"]
    assert seg["metrics"]["split"] == "test" and test["n"] >= 50
    assert test["dice_mean"] >= 0.95 and test["dice_ci"][0] <= test["dice_mean"]
    assert set(test["per_source"]) == {"shenzhen", "montgomery"}
    splits = seg["training"]["splits"]
    assert sum(s["images"] for s in splits.values()) == 398
    assert len(seg["training"]["data_sha256"]) == 64


def test_default_bundle_masks_match_the_manual_masks_of_the_sample_films():
    from classifier.bundle import load_segmenter
    from tests.conftest import LUNGS_MANIFEST
    from training.data.manifests import read_manifest
    from training.lungs.segment import dice_report

    spec, net = load_segmenter(DEFAULT_BUNDLE)
    # A check that the shipped weights load and work, not a held-out figure (some of these
    # films trained the segmenter; its test-split Dice is in the metadata, checked above).
    records = [r for r in read_manifest(LUNGS_MANIFEST) if r.source == "montgomery"]
    report = dice_report(net, records, spec, device=net.out.weight.device, bf16=False)
    assert report["dice_mean"] >= 0.93


def test_default_bundle_ships_its_gate_with_the_figures_it_was_measured_at():
    from classifier.bundle import load_gate

    gate = load_gate(DEFAULT_BUNDLE)
    assert gate is not None and gate.distance is not None
    metrics = gate.spec.metrics
    assert set(metrics["leave_one_kind_out"]) >= {"lateral_cxr", "ct_axial", "photo", "text"}
    # Measured by training/recipes/gate.sh for the 224 px bundle: 0.974 (302/310) of the test
    # split's films kept, 0.971 (68/70) of Montgomery's; 0.984 of the never-seen kinds caught.
    assert metrics["keep"]["test"]["all"]["rate"] >= 0.97
    assert metrics["keep"]["external"]["montgomery"]["rate"] >= 0.95
    assert metrics["leave_one_kind_out_pooled"]["rate"] >= 0.9


def test_default_bundle_keeps_frontal_films_and_refuses_what_it_cannot_read():
    import matplotlib
    from PIL import ImageOps

    from tests.conftest import LUNGS_DIR, LUNGS_MANIFEST

    predictor = load_bundle(DEFAULT_BUNDLE, device="cpu")

    def kept(folder, rows):
        results = predictor.predict([Image.open(folder / r["file"]) for r in rows], cam=False)
        return [r.assessment.assessable for r in results]

    test_rows = [r for r in csv.DictReader(SAMPLE_MANIFEST.open()) if r["split"] == "test"]
    # Measured 44 of 46 unseen sample films and 19 of 20 lung-set films when it shipped.
    assert sum(kept(SAMPLE_DIR, test_rows)) >= 42
    assert sum(kept(LUNGS_DIR, list(csv.DictReader(LUNGS_MANIFEST.open())))) >= 18
    not_cxr = SAMPLE_DIR.parent / "not_cxr_sample"
    rows = list(csv.DictReader((not_cxr / "manifest.csv").open()))
    verdicts = kept(not_cxr, rows)
    assert not any(v for v, r in zip(verdicts, rows, strict=True) if r["gate_split"] == "test")
    assert sum(verdicts) <= 1  # measured 0 of 12
    film = Image.open(SAMPLE_DIR / test_rows[0]["file"]).convert("L")
    photo = Image.open(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg")
    made = [film.rotate(90, expand=True), ImageOps.invert(film), photo.convert("L"), photo]
    assert not any(r.assessment.assessable for r in predictor.predict(made, cam=False))
