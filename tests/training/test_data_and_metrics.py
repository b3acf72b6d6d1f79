import numpy as np
import pytest

from tests.conftest import SAMPLE_MANIFEST
from training.data.manifests import ManifestError, Record, read_manifest, split_by_patient
from training.evaluation.metrics import classification_report, report_with_sources


def test_the_sample_manifest_reads_with_sources():
    records = read_manifest(SAMPLE_MANIFEST)
    assert len(records) == 119
    assert {r.label for r in records} == {
        "covid19",
        "bacterial_pneumonia",
        "viral_pneumonia",
        "normal",
    }
    assert all(r.path.is_file() for r in records)
    assert {r.source for r in records} == {"ieee8023", "kermany", "nih"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,label\nx.png,normal\n", "missing column"),
        ("file,label,patient_id\nmissing.png,normal,p1\n", "image not found"),
        ("file,label,patient_id\n,normal,p1\n", "are required"),
        ("file,label,patient_id\n", "no rows"),
    ],
)
def test_bad_manifests_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_patient_split_never_puts_a_patient_in_two_splits_and_is_seeded():
    records = [
        Record(path=None, label=label, patient_id=f"p{i // 3}")
        for i, label in enumerate(["normal", "covid19", "normal"] * 100)
    ]
    splits = split_by_patient(records, seed=3)
    patients = {name: {r.patient_id for r in rs} for name, rs in splits.items()}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(rs) for rs in splits.values()) == len(records)
    assert split_by_patient(records, seed=3) == splits
    assert split_by_patient(records, seed=4) != splits


def test_classification_report_counts_a_known_confusion():
    classes = ["a", "b"]
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    report = classification_report(y, probs, classes)
    assert report["accuracy"] == 0.75
    assert report["confusion_matrix"]["matrix"] == [[1, 1], [0, 2]]
    assert report["per_class"]["a"]["sensitivity"] == 0.5
    assert report["per_class"]["a"]["specificity"] == 1.0
    assert report["per_class"]["b"]["ppv"] == pytest.approx(2 / 3)
    assert report["per_class"]["a"]["auc"] == 1.0
    by_source = report_with_sources(y, probs, classes, ["x", "x", "y", "y"])
    assert by_source["per_source"]["x"]["accuracy"] == 0.5
    assert by_source["per_source"]["y"]["per_class"]["a"]["auc"] is None
