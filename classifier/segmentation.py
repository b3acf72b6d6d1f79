"""Lung-field segmentation: a small U-Net built the torchvision way, and what a mask tells.

The segmenter rides inside the classifier bundle (weights under ``segmenter.``, its own
metadata under ``segmenter`` in the bundle's metadata), so one hash covers the classifier and
the masks it is judged by.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from classifier.errors import BundleError
from classifier.preprocess import gray_batch

SEGMENTER_PREFIX = "segmenter."


@dataclass(frozen=True)
class UNetConfig:
    """Channels per level, top to bottom; the last is the bottleneck."""

    widths: tuple[int, ...] = (16, 32, 64, 128)
    in_channels: int = 1


@dataclass(frozen=True)
class SegmenterSpec:
    """A segmenter's metadata: architecture, input, and how well it did on its test split."""

    arch: str = "unet"
    config: dict[str, Any] = field(default_factory=lambda: unet_config_dict(UNetConfig()))
    input_size: int = 128
    mean: float = 0.5
    std: float = 0.25
    threshold: float = 0.5
    created_at: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SegmenterSpec":
        try:
            spec = cls(**data)
        except TypeError as exc:
            raise BundleError(f"segmenter metadata is incomplete: {exc}") from exc
        if spec.arch != "unet":
            raise BundleError(f"unknown segmenter architecture {spec.arch!r}")
        levels = len(spec.unet_config().widths)
        if levels < 2 or spec.input_size < 2 ** (levels - 1):
            raise BundleError(f"a {levels}-level U-Net cannot take {spec.input_size} px")
        return spec

    def unet_config(self) -> UNetConfig:
        cfg = dict(self.config)
        cfg["widths"] = tuple(cfg.get("widths", UNetConfig.widths))
        return UNetConfig(**cfg)


def unet_config_dict(config: UNetConfig) -> dict[str, Any]:
    """A UNetConfig as stored in JSON metadata (lists, not tuples)."""
    return {**asdict(config), "widths": list(config.widths)}


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Ronneberger et al.'s U-Net with batch norm: one logit per pixel (lung or not)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        widths = list(config.widths)
        if len(widths) < 2:
            raise BundleError("a U-Net needs at least two levels")
        self.down = nn.ModuleList()
        cin = config.in_channels
        for width in widths:
            self.down.append(_double_conv(cin, width))
            cin = width
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(cin, width, 2, stride=2))
            self.merge.append(_double_conv(2 * width, width))
            cin = width
        self.out = nn.Conv2d(cin, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            skip = skips.pop()
            x = up(x)
            if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: pad to the skip's size
                x = F.pad(x, (0, skip.shape[-1] - x.shape[-1], 0, skip.shape[-2] - x.shape[-2]))
            x = merge(torch.cat([skip, x], dim=1))
        return self.out(x)


def unet(config: UNetConfig | None = None) -> UNet:
    """Build a lung U-Net (random weights; train it with ``python -m training segment``)."""
    return UNet(config or UNetConfig())


def segmenter_input(gray: torch.Tensor, spec: SegmenterSpec) -> torch.Tensor:
    """Nx1xSxS grey levels in [0, 1] at the segmenter's size -> its normalized input."""
    return (gray - spec.mean) / spec.std


def predict_masks(
    segmenter: tuple["SegmenterSpec", nn.Module],
    arrays: list[np.ndarray],
    shapes: list[tuple[int, int]],
    *,
    device: torch.device,
    bf16: bool = False,
    memory_format=torch.contiguous_format,
) -> list[np.ndarray]:
    """One boolean lung mask per grey HxW array in [0, 1], at each given shape."""
    spec, net = segmenter
    gray = gray_batch(arrays, spec.input_size).to(device).contiguous(memory_format=memory_format)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        probs = net(segmenter_input(gray, spec)).float().sigmoid()
    return masks_at(probs, shapes, spec.threshold)


def masks_at(probs: torch.Tensor, shapes: list[tuple[int, int]], threshold: float):
    """Nx1xSxS lung probabilities -> one boolean HxW mask per image, at each given shape."""
    out = []
    for i, shape in enumerate(shapes):
        up = F.interpolate(probs[i : i + 1].float(), size=shape, mode="bilinear")
        out.append((up[0, 0] >= threshold).cpu().numpy())
    return out


def cam_lung_fraction(cam: np.ndarray, mask: np.ndarray) -> float | None:
    """The share of a heatmap's mass inside the mask, in [0, 1]; None for an empty map."""
    total = float(cam.sum())
    if total <= 0.0:
        return None
    return float(np.clip(cam[mask].sum() / total, 0.0, 1.0))


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    total = int(pred.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return float(2.0 * (pred & truth).sum() / total)
