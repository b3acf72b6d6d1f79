"""Manifests (file,label,patient_id[,source,view,mask,external,age_group,location]), patient-level
splits, cached datasets.

Optional columns: ``mask`` (a lung mask image, for segmentation), ``external`` (1/true/yes:
a hospital held out as an external test; training refuses such rows) and ``age_group``
(``adult`` or ``pediatric``; when blank it follows the source, see ``SOURCE_AGE_GROUPS``).
"""

import csv
import hashlib
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REQUIRED_COLUMNS = ("file", "label", "patient_id")
OPTIONAL_COLUMNS = ("source", "view", "mask", "external", "age_group", "location")
AGE_GROUPS = ("adult", "pediatric")
# The collections whose age group is known for every film (../shared/data READMEs): Kermany
# is children aged 1-5; the others are adult collections (ieee8023 has one covid19 film of a
# 12-year-old and some films without an age).
SOURCE_AGE_GROUPS = {
    "kermany": "pediatric",
    "nih": "adult",
    "ieee8023": "adult",
    "actualmed": "adult",
    "figure1": "adult",
    "shenzhen": "adult",
    "montgomery": "adult",
}
PARTIAL = -1  # the target of a row whose label only says "not covid19"
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"", "0", "false", "no", "n"}


class ManifestError(ValueError):
    """A manifest is missing, malformed or points at files that do not exist."""


@dataclass(frozen=True)
class Record:
    path: Path
    label: str
    patient_id: str
    source: str = ""
    view: str = ""
    mask: Path | None = None
    external: bool = False
    age_group: str = ""
    # Where the film was taken, as its source says ("Hannover Medical School, Hannover,
    # Germany"); the last comma-separated part is the country (training.evaluation.holdout).
    location: str = ""

    @property
    def adult(self) -> bool:
        return (self.age_group or SOURCE_AGE_GROUPS.get(self.source, "")) == "adult"


def _optional(row: dict, path: Path, line: int) -> dict:
    extra = {"source": row.get("source") or "", "view": row.get("view") or ""}
    if row.get("mask"):
        mask = path.parent / row["mask"]
        if not mask.is_file():
            raise ManifestError(f"{path}:{line}: mask not found: {mask}")
        extra["mask"] = mask
    external = (row.get("external") or "").strip().lower()
    if external not in _TRUE | _FALSE:
        raise ManifestError(f"{path}:{line}: external must be 1/0, true/false or yes/no")
    extra["external"] = external in _TRUE
    age = (row.get("age_group") or "").strip()
    if age and age not in AGE_GROUPS:
        raise ManifestError(f"{path}:{line}: age_group must be one of {AGE_GROUPS} or blank")
    extra["age_group"] = age
    extra["location"] = (row.get("location") or "").strip()
    return extra


def read_manifest(path: Path) -> list[Record]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
        records = []
        for line, row in enumerate(reader, start=2):
            if not row["file"] or not row["label"] or not row["patient_id"]:
                raise ManifestError(f"{path}:{line}: file, label and patient_id are required")
            file = path.parent / row["file"]
            if not file.is_file():
                raise ManifestError(f"{path}:{line}: image not found: {file}")
            records.append(
                Record(file, row["label"], row["patient_id"], **_optional(row, path, line))
            )
    if not records:
        raise ManifestError(f"{path}: no rows")
    return records


def refuse_external(records: list[Record]) -> None:
    """Training data must hold no row of a hospital kept apart as the external test."""
    external = [r for r in records if r.external]
    if external:
        sources = sorted({r.source for r in external})
        raise ManifestError(
            f"{len(external)} row(s) are marked external ({', '.join(sources)}): a hospital "
            "held out as the external test never trains the classifier"
        )


def write_manifest(path: Path, records: list[Record], *, relative_to: Path | None = None) -> None:
    """Write a manifest; with ``relative_to`` (its folder), file paths are stored relative."""

    def rel(p: Path | None) -> str:
        if p is None:
            return ""
        return os.path.relpath(p, relative_to) if relative_to else str(p)

    with Path(path).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS])
        for r in records:
            writer.writerow(
                [
                    rel(r.path),
                    r.label,
                    r.patient_id,
                    r.source,
                    r.view,
                    rel(r.mask),
                    int(r.external),
                    r.age_group,
                    r.location,
                ]
            )


def records_sha256(records: list[Record]) -> str:
    """Content hash of a training set: each image's bytes and its label, order-independent."""
    rows = sorted(
        f"{hashlib.sha256(r.path.read_bytes()).hexdigest()},{r.label},{r.patient_id}"
        for r in records
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def split_by_patient(
    records: list[Record], *, val: float = 0.15, test: float = 0.15, seed: int = 0
) -> dict[str, list[Record]]:
    """Seeded train/val/test split by patient, stratified by each patient's set of labels.

    Every image of a patient lands in the same split, so no patient is in two splits.
    """
    by_patient: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_patient[record.patient_id].append(record)
    strata: dict[str, list[str]] = defaultdict(list)
    for patient, items in sorted(by_patient.items()):
        strata["+".join(sorted({r.label for r in items}))].append(patient)
    rng = random.Random(seed)
    splits: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    for _, patients in sorted(strata.items()):
        rng.shuffle(patients)
        n_test = round(len(patients) * test)
        n_val = round(len(patients) * val)
        for i, patient in enumerate(patients):
            name = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            splits[name].extend(by_patient[patient])
    return splits
