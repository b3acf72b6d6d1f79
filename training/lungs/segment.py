"""Lung segmentation: train the U-Net on films with manual lung masks, split by patient, and
measure its Dice on the test split (per source, with a bootstrap interval)."""

import copy
import hashlib
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from tqdm import tqdm

from classifier.bundle import save_segmenter
from classifier.device import resolve_device, use_bf16
from classifier.preprocess import resize_gray, to_gray_array
from classifier.segmentation import (
    SegmenterSpec,
    UNetConfig,
    dice,
    segmenter_input,
    unet,
    unet_config_dict,
)
from training.data.datasets import load_gray
from training.data.manifests import ManifestError, Record, split_by_patient
from training.ensemble.config import SegmentConfig
from training.ensemble.loop import cosine_schedule, seed_everything


def _mask_array(path: Path) -> np.ndarray:
    return to_gray_array(load_gray(path)) >= 0.5


def masks_sha256(records: list[Record]) -> str:
    """Content hash of a segmentation set: each image's and mask's bytes, order-independent."""
    rows = sorted(
        f"{hashlib.sha256(r.path.read_bytes()).hexdigest()},"
        f"{hashlib.sha256(r.mask.read_bytes()).hexdigest()},{r.patient_id}"
        for r in records
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


class MaskDataset(Dataset):
    """Images and masks resized once to the segmenter's size; joint augmentation per item."""

    def __init__(self, records: list[Record], size: int, augment: v2.Transform | None = None):
        self.records = records
        self.images = torch.stack(
            [resize_gray(to_gray_array(load_gray(r.path)), size) for r in records]
        )
        self.masks = torch.stack(
            [(resize_gray(_mask_array(r.mask).astype(np.float32), size) >= 0.5) for r in records]
        )
        self.augment = augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        image, mask = tv_tensors.Image(self.images[index]), tv_tensors.Mask(self.masks[index])
        if self.augment is not None:
            image, mask = self.augment(image, mask)
        return image.as_subclass(torch.Tensor).clamp(0, 1), mask.as_subclass(torch.Tensor).float()


def make_augment(cfg: SegmentConfig) -> v2.Transform:
    """Geometry moves image and mask together; intensity changes the image only."""
    return v2.Compose(
        [
            v2.RandomAffine(
                degrees=cfg.rotation, translate=(0.05, 0.05), scale=(1 - cfg.zoom, 1 + cfg.zoom)
            ),
            v2.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast),
        ]
    )


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice: the Dice term keeps thin lung edges in play."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    probs = logits.sigmoid()
    inter = (probs * target).sum(dim=(1, 2, 3))
    soft = 1 - (2 * inter + 1) / (probs.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + soft.mean()


@torch.no_grad()
def predict_probs(model: nn.Module, images: torch.Tensor, spec: SegmenterSpec, *, device, bf16):
    """Nx1xSxS grey images -> Nx1xSxS lung probabilities (float32, CPU)."""
    model.eval()
    out = []
    for start in range(0, len(images), 32):
        batch = images[start : start + 32].to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(model(segmenter_input(batch, spec)).float().sigmoid().cpu())
    return torch.cat(out)


def _bootstrap_mean(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> list[float] | None:
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_boot)]
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]


def dice_report(
    model: nn.Module, records: list[Record], spec: SegmenterSpec, *, device, bf16
) -> dict:
    """Dice of each film at its mask's own resolution: mean, 95% CI, per source."""
    data = MaskDataset(records, spec.input_size)
    probs = predict_probs(model, data.images, spec, device=device, bf16=bf16)
    scores = []
    for i, record in enumerate(records):
        truth = _mask_array(record.mask)
        up = F.interpolate(probs[i : i + 1], size=truth.shape, mode="bilinear")[0, 0]
        scores.append(dice(up.numpy() >= spec.threshold, truth))
    scores = np.array(scores)
    sources = np.array([r.source for r in records])

    def summary(values: np.ndarray) -> dict:
        return {
            "n": len(values),
            "dice_mean": float(values.mean()),
            "dice_median": float(np.median(values)),
            "dice_min": float(values.min()),
            "dice_ci": _bootstrap_mean(values),
        }

    return {
        **summary(scores),
        "per_source": {s: summary(scores[sources == s]) for s in sorted(set(sources))},
    }


def _val_dice(model, data: MaskDataset, spec, *, device, bf16) -> float:
    probs = predict_probs(model, data.images, spec, device=device, bf16=bf16)
    truth = data.masks.numpy()
    pred = probs.numpy() >= spec.threshold
    return float(np.mean([dice(p, t) for p, t in zip(pred, truth, strict=True)]))


def train_segmenter(
    records: list[Record],
    out: Path,
    cfg: SegmentConfig,
    *,
    progress: bool = True,
    data_sources: list[dict] | None = None,
) -> SegmenterSpec:
    """Split by patient (stratified by source and label), train, keep the epoch with the best
    validation Dice, measure Dice on the test split and write the segmenter to ``out``."""
    missing = [str(r.path) for r in records if r.mask is None]
    if missing:
        raise ManifestError(f"{len(missing)} row(s) have no mask, e.g. {missing[0]}")
    seed_everything(cfg.seed)
    by_path = {r.path: r for r in records}
    strata = [replace(r, label=f"{r.source}/{r.label}") for r in records]
    raw = split_by_patient(strata, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed)
    splits = {name: [by_path[r.path] for r in rs] for name, rs in raw.items()}
    if not splits["train"] or not splits["val"]:
        raise ValueError("too few patients for a train/validation split")
    device = resolve_device(cfg.device)
    bf16 = use_bf16(device, cfg.precision)
    spec = SegmenterSpec(
        config=unet_config_dict(UNetConfig(widths=tuple(cfg.widths))),
        input_size=cfg.input_size,
        threshold=cfg.threshold,
    )
    train = MaskDataset(splits["train"], cfg.input_size, make_augment(cfg) if cfg.augment else None)
    val = MaskDataset(splits["val"], cfg.input_size)
    model = unet(spec.unet_config()).to(device).to(memory_format=torch.channels_last)
    loader = DataLoader(
        train, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train) > cfg.batch_size
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg, len(loader), cfg.epochs)
    best, best_state, history = -1.0, None, []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        with tqdm(
            total=len(train),
            desc=f"unet {epoch}/{cfg.epochs}",
            disable=not progress,
            unit="img",
            leave=False,
        ) as bar:
            for images, masks in loader:
                images = images.to(device).contiguous(memory_format=torch.channels_last)
                masks = masks.to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(segmenter_input(images, spec)).float()
                loss = _loss(logits, masks)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(images)
                count += len(images)
                bar.set_postfix(loss=f"{total / count:.3f}")
                bar.update(len(images))
        val_dice = _val_dice(model, val, spec, device=device, bf16=bf16)
        history.append(
            {
                "epoch": epoch,
                "loss": round(total / max(count, 1), 4),
                "val_dice": round(val_dice, 4),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        if progress:
            tqdm.write(
                f"unet epoch {epoch}: loss {total / max(count, 1):.3f} val Dice {val_dice:.4f}"
            )
        if val_dice > best:
            best, best_state = val_dice, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model = model.eval()
    test = splits["test"] or splits["val"]
    metrics = {
        "split": "test" if splits["test"] else "val",
        "test": dice_report(model, test, spec, device=device, bf16=bf16),
        "val_dice_best": best,
    }
    spec = replace(
        spec,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training={
            "config": asdict(cfg),
            "device": str(device),
            "bf16": bf16,
            "torch": torch.__version__,
            "data_sha256": masks_sha256(records),
            "data_sources": data_sources or [],
            "splits": {
                name: {
                    "images": len(rs),
                    "patients": len({r.patient_id for r in rs}),
                    "sources": {
                        s: sum(r.source == s for r in rs) for s in sorted({r.source for r in rs})
                    },
                }
                for name, rs in splits.items()
            },
            "history": history,
        },
        metrics=metrics,
    )
    save_segmenter(out, model.cpu(), spec)
    return spec
