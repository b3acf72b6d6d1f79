"""Rebuild tests/data/cxr_sample from ../shared/data/cxr (run from the repo root).

Picks about 30 images per class, one per patient, only under licences that allow
redistribution of modified copies (CC BY 3.0/4.0, CC0), preferring patients in the shipped
model's test split (seed 0), and re-encodes them as JPEG. The manifest's ``split`` column says
which split of the shipped model each image's patient was in.
"""

import csv
import random
import sys
from pathlib import Path

from PIL import Image

from training.data.manifests import read_manifest, split_by_patient

PER_CLASS = 30
# (label, source) -> how many to take, in order of preference.
QUOTA = {
    "covid19": [("ieee8023", 30)],
    "bacterial_pneumonia": [("kermany", 30)],
    "viral_pneumonia": [("kermany", 30)],
    "normal": [("nih", 12), ("kermany", 12), ("ieee8023", 6)],
}


def redistributable(licence: str) -> bool:
    return licence.startswith(("CC BY 3.0", "CC BY 4.0", "CC0"))


def main(src: Path, out: Path) -> None:
    manifest = src / "manifest.csv"
    rows = {str(src / r["file"]): r for r in csv.DictReader(manifest.open())}
    records = read_manifest(manifest)
    split_of = {
        r.patient_id: name for name, rs in split_by_patient(records, seed=0).items() for r in rs
    }
    rank = {"test": 0, "val": 1, "train": 2}
    rng = random.Random(0)
    (out / "images").mkdir(parents=True, exist_ok=True)
    chosen = []
    for label, quotas in QUOTA.items():
        for source, count in quotas:
            pool = [
                r
                for r in records
                if r.label == label
                and r.source == source
                and redistributable(rows[str(r.path)]["licence"])
            ]
            rng.shuffle(pool)
            pool.sort(key=lambda r: rank[split_of[r.patient_id]])
            seen: set[str] = set()
            for record in pool:
                if len(seen) == count:
                    break
                if record.patient_id not in seen:
                    seen.add(record.patient_id)
                    chosen.append(record)
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "file",
                "label",
                "patient_id",
                "source",
                "view",
                "split",
                "licence",
                "original_file",
                "location",
            ]
        )
        for record in chosen:
            row = rows[str(record.path)]
            name = f"images/{record.path.stem}.jpg"
            with Image.open(record.path) as img:
                img.convert("L").save(out / name, quality=85, optimize=True)
            writer.writerow(
                [
                    name,
                    record.label,
                    record.patient_id,
                    record.source,
                    record.view,
                    split_of[record.patient_id],
                    row["licence"],
                    row["original_file"],
                    row.get("location", ""),
                ]
            )
    print(f"wrote {len(chosen)} images to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
