"""Training: plain functions and a typed config; the bundle carries config, classes and metrics."""

import copy
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from classifier.bundle import save_bundle
from classifier.device import resolve_device, use_bf16
from classifier.ensemble import soft_vote
from classifier.metadata import BundleMetadata, MemberSpec
from classifier.networks import build_member
from training.data import Record, XrayDataset, records_sha256, split_by_patient
from training.metrics import classification_report, report_with_sources

DEFAULT_CLASSES = ["covid19", "bacterial_pneumonia", "viral_pneumonia", "normal"]
MEMBER_NAMES = {"mobilenet": "mobilenet", "vgg": "vgg"}


@dataclass
class TrainConfig:
    archs: list[str] = field(default_factory=lambda: ["mobilenet_v2", "vgg11_bn"])
    epochs: list[int] = field(default_factory=lambda: [12, 12])
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    input_size: int = 224
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    augment: bool = True
    device: str = "auto"
    precision: str = "auto"
    init: str | None = None
    classes: list[str] | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def member_name(arch: str) -> str:
    return (
        "mobilenet" if arch.startswith("mobilenet") else "vgg" if arch.startswith("vgg") else arch
    )


def class_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    counts = torch.bincount(targets, minlength=num_classes).float().clamp(min=1)
    return counts.sum() / (num_classes * counts)


@torch.no_grad()
def predict_probs(
    model: nn.Module, dataset: XrayDataset, *, device: torch.device, bf16: bool, batch_size: int
) -> np.ndarray:
    model.eval()
    out = []
    for images, _ in DataLoader(dataset, batch_size=batch_size):
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(model(images).float().softmax(1).cpu())
    return torch.cat(out).numpy()


def train_one_epoch(model, loader, optimizer, scheduler, loss_fn, *, device, bf16, bar) -> float:
    model.train()
    total, count = 0.0, 0
    for images, targets in loader:
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        targets = targets.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(images).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(targets)
        count += len(targets)
        bar.set_postfix(loss=f"{total / count:.3f}")
        bar.update(len(targets))
    return total / max(count, 1)


def train_member(
    arch: str,
    classes: list[str],
    train: XrayDataset,
    val: XrayDataset,
    epochs: int,
    cfg: TrainConfig,
    *,
    device: torch.device,
    bf16: bool,
    progress: bool = True,
) -> tuple[nn.Module, list[dict]]:
    """Train one member; keep the weights of the epoch with the best validation macro AUC."""
    model = build_member(arch, len(classes), init=cfg.init).to(device)
    model = model.to(memory_format=torch.channels_last)
    loader = DataLoader(
        train, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train) > cfg.batch_size
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(train.targets, len(classes)).to(device))
    best_auc, best_state, history = -math.inf, None, []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        with tqdm(
            total=len(train),
            desc=f"{arch} {epoch}/{epochs}",
            disable=not progress,
            unit="img",
            leave=False,
        ) as bar:
            loss = train_one_epoch(
                model, loader, optimizer, scheduler, loss_fn, device=device, bf16=bf16, bar=bar
            )
        probs = predict_probs(model, val, device=device, bf16=bf16, batch_size=cfg.batch_size)
        report = classification_report(val.targets.numpy(), probs, classes)
        auc = report["macro_auc"] if report["macro_auc"] is not None else -loss
        history.append(
            {
                "epoch": epoch,
                "loss": round(loss, 4),
                "val_macro_auc": report["macro_auc"],
                "val_accuracy": report["accuracy"],
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        if progress:
            tqdm.write(
                f"{arch} epoch {epoch}: loss {loss:.3f} val macro AUC {report['macro_auc']}"
                f" acc {report['accuracy']:.3f}"
            )
        if auc > best_auc:
            best_auc, best_state = auc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.eval(), history


def _counts(records: list[Record]) -> dict:
    return {
        "images": len(records),
        "patients": len({r.patient_id for r in records}),
        "labels": dict(Counter(r.label for r in records)),
        "sources": dict(Counter(r.source for r in records)),
    }


def fit(
    records: list[Record],
    out: Path,
    cfg: TrainConfig,
    *,
    progress: bool = True,
    data_sources: list[dict] | None = None,
) -> BundleMetadata:
    """Split by patient, train every member, evaluate the ensemble on the test split, save."""
    seed_everything(cfg.seed)
    labels = {r.label for r in records}
    classes = cfg.classes or (DEFAULT_CLASSES if labels <= set(DEFAULT_CLASSES) else sorted(labels))
    unknown = labels - set(classes)
    if unknown:
        raise ValueError(f"labels not in the class list: {sorted(unknown)}")
    splits = split_by_patient(records, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed)
    if not splits["train"] or not splits["val"]:
        raise ValueError("too few patients for a train/validation split")
    device = resolve_device(cfg.device)
    bf16 = use_bf16(device, cfg.precision)
    norm = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    data = {
        name: XrayDataset(
            rs, classes, size=cfg.input_size, augment=cfg.augment and name == "train", **norm
        )
        for name, rs in splits.items()
        if rs
    }
    eval_set = data.get("test", data["val"])
    members, specs, histories, member_test = {}, [], {}, []
    for arch, epochs in zip(cfg.archs, cfg.epochs, strict=True):
        name = member_name(arch)
        seed_everything(cfg.seed)
        model, history = train_member(
            arch,
            classes,
            data["train"],
            data["val"],
            epochs,
            cfg,
            device=device,
            bf16=bf16,
            progress=progress,
        )
        members[name], histories[name] = model.cpu(), history
        specs.append(MemberSpec(name=name, arch=arch, head="pooled", weight=1.0))
        model.to(device)
        member_test.append(
            predict_probs(model, eval_set, device=device, bf16=bf16, batch_size=cfg.batch_size)
        )
        model.cpu()
    probs = soft_vote([torch.from_numpy(p) for p in member_test], [s.weight for s in specs]).numpy()
    y = eval_set.targets.numpy()
    metrics = {
        "split": "test" if "test" in data else "val",
        "ensemble": report_with_sources(y, probs, classes, [r.source for r in eval_set.records]),
        "members": {
            s.name: classification_report(y, p, classes)
            for s, p in zip(specs, member_test, strict=True)
        },
    }
    meta = BundleMetadata(
        classes=classes,
        members=specs,
        input_size=cfg.input_size,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training={
            "config": asdict(cfg),
            "device": str(device),
            "bf16": bf16,
            "data_sha256": records_sha256(records),
            "data_sources": data_sources or [],
            "splits": {name: _counts(rs) for name, rs in splits.items()},
            "history": histories,
        },
        metrics=metrics,
        **norm,
    )
    save_bundle(out, members, meta)
    return meta
