"""Contact sheets: the segmenter's lung contours drawn on films of each source, so a reader
can see at a glance whether it fails more on one collection or class (a new shortcut)."""

import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from classifier import load_bundle
from training.data.datasets import load_gray
from training.data.manifests import Record
from training.evaluation.metrics import grouped_quartiles

TILE = 160
CONTOUR = (255, 40, 40)


def contour(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask: inside, with a 4-neighbour outside."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    return mask & ~inner


def _pick(records: list[Record], per_source: int, seed: int) -> dict[str, list[Record]]:
    """Up to ``per_source`` films of each source, spread evenly over its labels."""
    by_source: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_source[record.source][record.label].append(record)
    rng = random.Random(seed)
    chosen = {}
    for source, labels in sorted(by_source.items()):
        pools = {k: rng.sample(v, len(v)) for k, v in sorted(labels.items())}
        picked: list[Record] = []
        while len(picked) < per_source and any(pools.values()):
            for pool in pools.values():
                if pool and len(picked) < per_source:
                    picked.append(pool.pop())
        chosen[source] = picked
    return chosen


def _tile(image: Image.Image, mask: np.ndarray, caption: str) -> Image.Image:
    grey = np.asarray(image.convert("L").resize(mask.shape[::-1], Image.BILINEAR))
    rgb = np.repeat(grey[..., None], 3, axis=2)
    edge = contour(mask)
    # Thicken the line a little so it survives the downscale to the tile.
    edge = edge | np.roll(edge, 1, 0) | np.roll(edge, 1, 1)
    rgb[edge] = CONTOUR
    tile = Image.fromarray(rgb).resize((TILE, TILE), Image.BILINEAR)
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, TILE - 14, TILE, TILE), fill=(0, 0, 0))
    draw.text((3, TILE - 13), caption, fill=(255, 255, 255))
    return tile


def lung_areas(predictor, records: list[Record], batch_size: int = 16) -> list[float]:
    """The predicted lung area of each film, as a share of the image."""
    areas = []
    for start in range(0, len(records), batch_size):
        chunk = [load_gray(r.path) for r in records[start : start + batch_size]]
        areas += [res.lung_area_fraction for res in predictor.predict(chunk, cam=False)]
    return areas


def contact_sheets(
    bundle: Path,
    records: list[Record],
    out: Path,
    *,
    per_source: int = 24,
    columns: int = 6,
    seed: int = 0,
    device=None,
) -> tuple[list[Path], dict]:
    """One PNG per source under ``out``: films with their predicted lung contour, each captioned
    with its label and the predicted lung area; and the lung area of every film, in quartiles
    per source and label."""
    predictor = load_bundle(bundle, device=device)
    if predictor.segmenter is None:
        raise ValueError(f"{bundle} has no lung segmenter")
    areas = lung_areas(predictor, records)
    groups = [f"{r.source}/{r.label}" for r in records]
    table = {
        "per_source": grouped_quartiles(areas, [r.source for r in records]),
        "per_source_label": grouped_quartiles(areas, groups),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source, picked in _pick(records, per_source, seed).items():
        images = [load_gray(r.path) for r in picked]
        results = predictor.predict(images, cam=False)
        tiles = [
            _tile(img, res.lung_mask, f"{r.label[:14]} {res.lung_area_fraction:.0%}")
            for img, res, r in zip(images, results, picked, strict=True)
        ]
        rows = -(-len(tiles) // columns)
        sheet = Image.new("RGB", (columns * TILE, rows * TILE), (255, 255, 255))
        for i, tile in enumerate(tiles):
            sheet.paste(tile, ((i % columns) * TILE, (i // columns) * TILE))
        path = out / f"lungs-{source}.png"
        sheet.save(path, optimize=True)
        written.append(path)
    return written, table
