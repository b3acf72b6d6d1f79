"""Training one ensemble member: fine-tune, layer cutoff, or cached features with a frozen
backbone. AdamW, cosine schedule with linear warm-up, early stopping on validation macro AUC."""

import copy
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler
from tqdm import tqdm

from classifier.bundle import load_bundle_members
from classifier.networks import build_member
from training.data.datasets import XrayDataset
from training.ensemble.config import TrainConfig
from training.ensemble.objectives import Objective, PartialLoss, class_weights
from training.evaluation.metrics import classification_report


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def member_name(arch: str) -> str:
    for prefix in ("mobilenet", "vgg"):
        if arch.startswith(prefix):
            return prefix
    return arch


def initial_model(arch: str, num_classes: int, init: str | None) -> nn.Module:
    """A fresh member, optionally from ImageNet weights or from a bundle's member of this arch."""
    if init and Path(init).suffix == ".safetensors":
        meta, members = load_bundle_members(Path(init))
        spec = next((m for m in meta.members if m.arch == arch), None)
        if spec is None:
            raise ValueError(f"bundle {init} has no {arch} member to start from")
        model = members[spec.name]
        if len(meta.classes) != num_classes:
            model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
        return model.float().train()
    return build_member(arch, num_classes, init=init)


def backbone_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Backbone: image -> pooled feature vector; head: the classifier (for cached features)."""
    backbone = nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return backbone, model.classifier


def group_weights(targets: torch.Tensor, sources: list[str], power: float = 0.5) -> torch.Tensor:
    """Per-image sampling weights that give every class the same mass and, within a class,
    shift mass towards its rarer sources: a (class, source) group of n images gets a share
    proportional to n ** (1 - power). power 0 is class balance; 1 gives each source of a class
    the same mass. This counters a model learning the hospital instead of the disease (e.g.
    every ieee8023 image being covid19 to it)."""
    groups = list(zip(targets.tolist(), sources, strict=True))
    count = {g: groups.count(g) for g in set(groups)}
    share = {g: n ** (1.0 - power) for g, n in count.items()}
    class_total = {}
    for (label, _), value in share.items():
        class_total[label] = class_total.get(label, 0.0) + value
    return torch.tensor([share[g] / class_total[g[0]] / count[g] for g in groups])


def _loader(dataset, cfg: TrainConfig, targets: torch.Tensor, sources: list[str]) -> DataLoader:
    drop_last = len(dataset) > cfg.batch_size
    if cfg.balance in ("sampler", "source"):
        if cfg.balance == "sampler":
            # A partial-label row is sampled like a row of the rarest class.
            per_class = class_weights(targets, int(targets.max()) + 1)
            weights = torch.where(targets >= 0, per_class[targets.clamp_min(0)], per_class.max())
        else:
            weights = group_weights(targets, sources, cfg.source_power)
        sampler = WeightedRandomSampler(weights.double(), len(dataset), replacement=True)
        return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=drop_last)
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=drop_last)


def cosine_schedule(optimizer, cfg, steps_per_epoch: int, epochs: int):
    """Linear warm-up over ``cfg.warmup_epochs``, then cosine decay to zero."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, int(cfg.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def predict_logits(model: nn.Module, dataset, *, device, bf16: bool, batch_size: int) -> np.ndarray:
    model.eval()
    out = []
    for inputs, *_ in DataLoader(dataset, batch_size=batch_size):
        inputs = inputs.to(device)
        if inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(model(inputs).float().cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def cache_features(backbone: nn.Module, dataset: XrayDataset, *, device, bf16, batch_size):
    """Pooled backbone features for every image, computed once (no augmentation)."""
    logits = predict_logits(backbone, dataset, device=device, bf16=bf16, batch_size=batch_size)
    return TensorDataset(torch.from_numpy(logits), dataset.targets)


def _freeze(model: nn.Module, cfg: TrainConfig) -> list[nn.Module]:
    frozen = list(model.features[: cfg.freeze_layers]) if cfg.strategy == "freeze" else []
    for module in frozen:
        module.requires_grad_(False)
    return frozen


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
    """Train one member; keep the weights of the epoch with the best validation macro AUC and
    stop after ``cfg.patience`` epochs without improvement."""
    model = initial_model(arch, len(classes), cfg.init).to(device)
    model = model.to(memory_format=torch.channels_last)
    trainable, train_data, val_data = model, train, val
    if cfg.strategy == "features":
        model.requires_grad_(False)
        backbone, trainable = backbone_and_head(model)
        trainable.requires_grad_(True)
        options = {"device": device, "bf16": bf16, "batch_size": cfg.batch_size}
        train_data = cache_features(backbone, train, **options)
        val_data = cache_features(backbone, val, **options)
    frozen = _freeze(model, cfg)
    weight = class_weights(train.targets, len(classes)) if cfg.balance == "loss" else None
    covid = classes.index("covid19") if "covid19" in classes else None
    loss_fn = PartialLoss(weight, covid).to(device)
    sources = getattr(train, "sources", None) or []
    objective = None
    if cfg.strategy != "features":
        objective = Objective(model, arch, loss_fn, cfg, len(classes), len(sources)).to(device)
    params = [p for p in trainable.parameters() if p.requires_grad]
    params += objective.parameters() if objective is not None else []
    loader = _loader(train_data, cfg, train.targets, [r.source for r in train.records])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg, len(loader), epochs)
    ema = _ema(trainable, cfg.ema) if cfg.ema and cfg.strategy != "features" else None
    scored_val = val.targets >= 0
    best_auc, best_state, history, stale = -math.inf, None, [], 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        trainable.train()
        if objective is not None:
            objective.train()
        for module in frozen:
            module.eval()  # frozen blocks keep their batch-norm statistics too
        loss = _epoch(
            trainable,
            loader,
            optimizer,
            scheduler,
            objective or loss_fn,
            device,
            bf16,
            desc=f"{arch} {epoch}/{epochs}",
            progress=progress,
            ema=ema,
        )
        if ema is not None:
            # Averaged weights need their own batch-norm statistics: an average of the
            # running statistics does not match them (the first EMA runs scored AUC 0.5).
            _refresh_bn(ema.module, train_data, cfg.batch_size, device)
        scoring = trainable if ema is None else ema.module
        logits = predict_logits(
            scoring, val_data, device=device, bf16=bf16, batch_size=cfg.batch_size
        )
        probs = torch.from_numpy(logits[scored_val.numpy()]).softmax(1).numpy()
        report = classification_report(val.targets[scored_val].numpy(), probs, classes, n_boot=0)
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
                f" accuracy {report['accuracy']:.3f}"
            )
        if auc > best_auc:
            source = model if ema is None else ema.module
            best_auc, best_state, stale = auc, copy.deepcopy(source.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.patience and epoch > epochs // 2:
                break
    model.load_state_dict(best_state)
    return model.eval(), history


def _ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the weights; its batch-norm statistics are recomputed
    for the averaged weights before each scoring (``_refresh_bn``)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


@torch.no_grad()
def _refresh_bn(model: nn.Module, dataset, batch_size: int, device) -> None:
    """Batch-norm statistics of ``model`` from one pass over the training images, in fp32
    (torch.optim.swa_utils.update_bn)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    images = (batch[0] for batch in loader)
    update_bn(images, model, device=device)


def _epoch(
    model, loader, optimizer, scheduler, loss_fn, device, bf16, *, desc, progress, ema=None
) -> float:
    total, count = 0.0, 0
    with tqdm(
        total=len(loader.dataset), desc=desc, disable=not progress, unit="img", leave=False
    ) as bar:
        for inputs, targets, *extra in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            extra = [e.to(device) for e in extra]
            if inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                if isinstance(loss_fn, Objective):
                    loss = loss_fn(inputs, targets, *extra)
                else:
                    loss = loss_fn(model(inputs).float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item() * len(targets)
            count += len(targets)
            bar.set_postfix(loss=f"{total / count:.3f}")
            bar.update(len(targets))
    return total / max(count, 1)
