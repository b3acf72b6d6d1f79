import csv
import shutil

import pytest

from training.__main__ import main
from training.data.importers import (
    covid_finding_label,
    import_covid_chestxray,
    import_imagefolder,
    import_kermany,
)
from training.data.manifests import ManifestError, read_manifest


@pytest.mark.parametrize(
    ("finding", "label"),
    [
        ("COVID-19", "covid19"),
        ("Pneumonia/Viral/COVID-19", "covid19"),
        ("No Finding", "normal"),
        ("Streptococcus", "bacterial_pneumonia"),
        ("Pneumonia/Bacterial/Klebsiella", "bacterial_pneumonia"),
        ("SARS", "viral_pneumonia"),
        ("Pneumonia/Viral/Influenza", "viral_pneumonia"),
        ("Pneumocystis", None),
        ("ARDS", None),
    ],
)
def test_covid_collection_findings_map_to_our_classes(finding, label):
    assert covid_finding_label(finding) == label


def test_covid_collection_import_keeps_frontal_xrays_with_files(tmp_path, sample_images):
    (tmp_path / "images").mkdir()
    rows = [
        ("1", "COVID-19", "PA", "X-ray", "a.jpg", True),
        ("1", "COVID-19", "AP Supine", "X-ray", "b.jpg", True),
        ("2", "Streptococcus", "PA", "X-ray", "c.jpg", True),
        ("3", "No Finding", "AP", "X-ray", "d.jpg", True),
        ("4", "COVID-19", "L", "X-ray", "e.jpg", True),  # lateral: excluded
        ("5", "COVID-19", "Axial", "CT", "f.jpg", True),  # CT: excluded
        ("6", "Pneumocystis", "PA", "X-ray", "g.jpg", True),  # not our class
        ("7", "COVID-19", "PA", "X-ray", "missing.jpg", False),  # file missing
    ]
    with (tmp_path / "metadata.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["patientid", "finding", "view", "modality", "folder", "filename"])
        for i, (pid, finding, view, modality, name, exists) in enumerate(rows):
            writer.writerow([pid, finding, view, modality, "images", name])
            if exists:
                shutil.copy(sample_images[i], tmp_path / "images" / name)
    records = import_covid_chestxray(tmp_path)
    assert [(r.path.name, r.label, r.patient_id, r.view) for r in records] == [
        ("a.jpg", "covid19", "ieee8023-1", "PA"),
        ("b.jpg", "covid19", "ieee8023-1", "AP Supine"),
        ("c.jpg", "bacterial_pneumonia", "ieee8023-2", "PA"),
        ("d.jpg", "normal", "ieee8023-3", "AP"),
    ]


def test_kermany_file_names_give_patient_and_pathogen(tmp_path, sample_images):
    files = {
        "train/PNEUMONIA/person1_bacteria_1.jpeg": ("bacterial_pneumonia", "kermany-person1"),
        "train/PNEUMONIA/person1_virus_6.jpeg": ("viral_pneumonia", "kermany-person1"),
        "test/NORMAL/IM-0115-0001.jpeg": ("normal", "kermany-IM-0115"),
        "train/NORMAL/NORMAL2-IM-1427-0001.jpeg": ("normal", "kermany-NORMAL2-IM-1427"),
    }
    for i, name in enumerate(files):
        path = tmp_path / "chest_xray" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_images[i], path)
    records = import_kermany(tmp_path)
    assert {r.path.name: (r.label, r.patient_id) for r in records} == {
        name.split("/")[-1]: value for name, value in files.items()
    }
    assert {r.source for r in records} == {"kermany"}


def test_imagefolder_labels_come_from_folders_and_the_cli_writes_a_relative_manifest(
    tmp_path, sample_images
):
    root = tmp_path / "tree"
    for i, label in enumerate(["normal", "normal", "covid19"]):
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_images[i], root / label / f"img{i}.jpg")
    assert {r.label for r in import_imagefolder(root)} == {"normal", "covid19"}
    out = tmp_path / "manifests" / "tree.csv"
    out.parent.mkdir()
    assert main(["import", "imagefolder", str(root), "--out", str(out)]) == 0
    assert "../tree/normal/img0.jpg" in out.read_text()
    assert len(read_manifest(out)) == 3


def test_importers_say_clearly_when_the_layout_is_wrong(tmp_path):
    with pytest.raises(ManifestError, match=r"metadata\.csv"):
        import_covid_chestxray(tmp_path)
    with pytest.raises(ManifestError, match="NORMAL/PNEUMONIA"):
        import_kermany(tmp_path)
    with pytest.raises(ManifestError, match="label folders"):
        import_imagefolder(tmp_path)
