import numpy as np
import pytest

from classifier import load_bundle
from classifier.bundle import load_segmenter
from tests.conftest import LUNGS_MANIFEST, SAMPLE_DIR
from training.__main__ import main
from training.data.manifests import ManifestError, read_manifest
from training.ensemble.config import SegmentConfig
from training.lungs.segment import train_segmenter

FAST = {"widths": [4, 8], "input_size": 32, "epochs": 2, "batch_size": 8, "device": "cpu"}


def test_segmenter_trains_on_the_sample_splits_by_patient_and_reports_dice(tmp_path):
    records = read_manifest(LUNGS_MANIFEST)
    spec = train_segmenter(
        records, tmp_path / "u.safetensors", SegmentConfig(**FAST), progress=False
    )
    splits = spec.training["splits"]
    assert sum(s["images"] for s in splits.values()) == len(records)
    assert splits["train"]["images"] and splits["test"]["images"]
    # One film per patient here, so whole patients: patients = images in every split.
    assert all(s["patients"] == s["images"] for s in splits.values())
    assert sum(s["patients"] for s in splits.values()) == len({r.patient_id for r in records})
    assert len(spec.training["history"]) == 2 and len(spec.training["data_sha256"]) == 64
    test = spec.metrics["test"]
    assert test["n"] == splits["test"]["images"]
    assert 0.0 <= test["dice_mean"] <= 1.0 and set(test["per_source"]) <= {"shenzhen", "montgomery"}
    loaded_spec, _ = load_segmenter(tmp_path / "u.safetensors")
    assert loaded_spec == spec


def test_segment_and_attach_commands_make_a_bundle_with_lung_masks(tmp_path, tiny_bundle, capsys):
    unet_path, bundle = tmp_path / "u.safetensors", tmp_path / "b.safetensors"
    argv = ["segment", "--manifest", str(LUNGS_MANIFEST), "--out", str(unet_path)]
    argv += ["--epochs", "1", "--input-size", "32", "--widths", "4,8", "--device", "cpu"]
    assert main(argv) == 0
    assert "Dice mean" in capsys.readouterr().out
    assert (
        main(
            [
                "attach-segmenter",
                "--bundle",
                str(tiny_bundle),
                "--segmenter",
                str(unet_path),
                "--out",
                str(bundle),
            ]
        )
        == 0
    )
    predictor = load_bundle(bundle, device="cpu")
    image = next((SAMPLE_DIR / "images").glob("*.jpg"))
    from PIL import Image

    result = predictor.predict([Image.open(image)])[0]
    assert result.lung_mask is not None and result.cam_lung_fraction is not None


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"epochs": 0}, "at least one epoch"), ({"input_size": 31}, "divisible by 2")],
)
def test_segment_config_refuses_what_cannot_train(changes, message):
    with pytest.raises(ValueError, match=message):
        SegmentConfig(**{**FAST, **changes})


def test_segmenter_refuses_rows_without_masks(tmp_path):
    from tests.conftest import SAMPLE_MANIFEST

    with pytest.raises(ManifestError, match="no mask"):
        train_segmenter(
            read_manifest(SAMPLE_MANIFEST), tmp_path / "u.safetensors", SegmentConfig(**FAST)
        )


def test_contact_sheets_show_each_source_and_tabulate_lung_area(tmp_path, tiny_bundle_with_lungs):
    from PIL import Image

    from tests.conftest import SAMPLE_MANIFEST
    from training.lungs.contact import contact_sheets, contour

    records = read_manifest(SAMPLE_MANIFEST)[::6] + read_manifest(LUNGS_MANIFEST)
    paths, table = contact_sheets(
        tiny_bundle_with_lungs, records, tmp_path, per_source=4, columns=2, device="cpu"
    )
    sources = sorted({r.source for r in records})
    assert [p.name for p in paths] == [f"lungs-{s}.png" for s in sources]
    assert Image.open(paths[0]).size == (2 * 160, 2 * 160)
    assert sum(q["n"] for q in table["per_source"].values()) == len(records)
    assert "montgomery/tuberculosis" in table["per_source_label"]
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:4, 1:4] = True
    assert contour(mask).sum() == 8  # the ring around the centre pixel


def test_contact_sheets_need_a_segmenter(tmp_path, tiny_bundle):
    from training.lungs.contact import contact_sheets

    with pytest.raises(ValueError, match="no lung segmenter"):
        contact_sheets(tiny_bundle, read_manifest(LUNGS_MANIFEST), tmp_path)
