"""Build manifests from the public collections' own layouts."""

import csv
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from training.data.manifests import ManifestError, Record, read_manifest

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
FRONTAL_VIEWS = {"PA", "AP", "AP Supine", "AP semi erect", "AP erect"}
# The collection's older flat `finding` names, by pathogen type.
BACTERIAL = {
    "streptococcus",
    "klebsiella",
    "legionella",
    "e.coli",
    "chlamydophila",
    "mycoplasma bacterial pneumonia",
    "staphylococcus spp",
    "nocardia",
}
VIRAL = {"sars", "mers", "mers-cov", "influenza", "varicella", "herpes pneumonia"}


def covid_finding_label(finding: str) -> str | None:
    """Map a covid-chestxray-dataset `finding` (flat or hierarchical) to our classes."""
    parts = [p.strip().lower() for p in finding.split("/")]
    if "covid-19" in parts:
        return "covid19"
    if parts == ["no finding"]:
        return "normal"
    if "bacterial" in parts or parts[-1] in BACTERIAL:
        return "bacterial_pneumonia"
    if "viral" in parts or parts[-1] in VIRAL:
        return "viral_pneumonia"
    return None  # fungal, ARDS, tuberculosis, unknown: not one of our classes


def import_covid_chestxray(root: Path) -> list[Record]:
    """ieee8023/covid-chestxray-dataset: `metadata.csv` plus `images/`; frontal X-rays only."""
    metadata = Path(root) / "metadata.csv"
    if not metadata.is_file():
        raise ManifestError(f"{metadata} not found: is this the covid-chestxray-dataset folder?")
    records = []
    with metadata.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("modality") != "X-ray" or row.get("view") not in FRONTAL_VIEWS:
                continue
            label = covid_finding_label(row.get("finding", ""))
            path = Path(root) / (row.get("folder") or "images") / row.get("filename", "")
            if label is None or not path.is_file():
                continue
            records.append(
                Record(path, label, f"ieee8023-{row['patientid']}", "ieee8023", row["view"])
            )
    return records


_KERMANY_PNEUMONIA = re.compile(r"^(person\d+)_(bacteria|virus)_\d+", re.IGNORECASE)
_KERMANY_NORMAL = re.compile(r"^((?:NORMAL2-)?IM-\d+)-\d+", re.IGNORECASE)


def import_kermany(root: Path) -> list[Record]:
    """Kermany chest_xray/{train,test,val}/{NORMAL,PNEUMONIA}; the file name gives the patient
    and, for pneumonia, bacteria or virus."""
    records = []
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.parent.name not in (
            "NORMAL",
            "PNEUMONIA",
        ):
            continue
        if path.parent.name == "PNEUMONIA":
            match = _KERMANY_PNEUMONIA.match(path.stem)
            if not match:
                continue
            label = "bacterial_pneumonia" if match[2].lower() == "bacteria" else "viral_pneumonia"
        else:
            match = _KERMANY_NORMAL.match(path.stem)
            if not match:
                continue
            label = "normal"
        records.append(Record(path, label, f"kermany-{match[1]}", "kermany", "AP"))
    if not records:
        raise ManifestError(f"no NORMAL/PNEUMONIA images under {root}")
    return records


def import_imagefolder(root: Path) -> list[Record]:
    """`root/<label>/**/image`: the folder names the label. Such trees carry no patient ids, so
    each image counts as its own patient; prefer a manifest with real ids where you have one."""
    root = Path(root)
    records = [
        Record(path, path.relative_to(root).parts[0], f"{root.name}-{path.stem}", root.name, "")
        for path in sorted(root.rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and len(path.relative_to(root).parts) > 1
    ]
    if not records:
        raise ManifestError(f"no images in label folders under {root}")
    return records


# The lungs set's hospital that never trains the classifier: the external test.
EXTERNAL_SOURCES = ("montgomery",)


def import_lungs(root: Path) -> list[Record]:
    """The lung-mask set (`root/manifest.csv` with file,mask,label,patient_id,source,view):
    every row keeps its mask, and the rows of ``EXTERNAL_SOURCES`` are marked external."""
    root = Path(root)
    records = read_manifest(root / "manifest.csv")
    return [replace(r, external=r.source in EXTERNAL_SOURCES) for r in records]


IMPORTERS: dict[str, Callable[[Path], list[Record]]] = {
    "lungs": import_lungs,
    "covid-chestxray": import_covid_chestxray,
    "kermany": import_kermany,
    "imagefolder": import_imagefolder,
}
