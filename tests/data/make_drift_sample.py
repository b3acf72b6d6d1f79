"""Rebuild tests/data/drift_sample from ../shared/data (run from the repo root, after
``python -m training import lungs ../shared/data/lungs --out var/shenzhen.csv --source
shenzhen``): the drift demonstration's in-distribution films (tests/xrayweb/test_drift_demo.py).

Takes 100 films at random (seed 0), one per patient, from the shipped bundle's own test split
(the collections plus the Shenzhen films, split with the bundle's seed and fractions: films it
never trained on, from its hospitals), only under licences that allow redistribution of
modified copies (CC BY 3.0/4.0, CC0; the Shenzhen set's public release), and re-encodes them
as 8-bit grayscale JPEG (quality 85) with the shorter side at 256 px.
"""

import csv
import random
import sys
from pathlib import Path

from PIL import Image

from classifier import DEFAULT_BUNDLE, read_metadata
from training.data.manifests import read_manifest, split_by_patient

COUNT = 100


def redistributable(row: dict) -> bool:
    licence = row.get("licence") or ""
    return row["source"] == "shenzhen" or licence.startswith(("CC BY 3.0", "CC BY 4.0", "CC0"))


def main(out: Path) -> None:
    manifests = [Path("../shared/data/cxr/manifest.csv"), Path("var/shenzhen.csv")]
    rows = {}
    for manifest in manifests:
        for row in csv.DictReader(manifest.open()):
            rows[str((manifest.parent / row["file"]).resolve())] = row
    records = [r for m in manifests for r in read_manifest(m)]
    config = read_metadata(DEFAULT_BUNDLE).training["config"]
    test = split_by_patient(
        records, val=config["val_fraction"], test=config["test_fraction"], seed=config["seed"]
    )["test"]
    pool, seen = [], set()
    for record in test:
        row = rows[str(Path(record.path).resolve())]
        if redistributable(row) and record.patient_id not in seen:
            seen.add(record.patient_id)
            pool.append((record, row))
    chosen = random.Random(0).sample(pool, COUNT)
    (out / "images").mkdir(parents=True, exist_ok=True)
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label", "patient_id", "source", "view", "licence"])
        for record, row in chosen:
            name = f"images/{record.source}_{Path(record.path).stem}.jpg"
            with Image.open(record.path) as img:
                img = img.convert("L")
                scale = 256 / min(img.size)
                if scale < 1:
                    img = img.resize((round(img.width * scale), round(img.height * scale)))
                img.save(out / name, quality=85, optimize=True)
            licence = row.get("licence") or "NLM: public research use (see LICENCE.md)"
            writer.writerow(
                [name, record.label, record.patient_id, record.source, record.view, licence]
            )
    print(f"wrote {COUNT} images to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
