"""Ensemble member builders: torchvision backbones with heads for the bundle's classes.

Each member is split at its Grad-CAM layer into a ``body`` (input -> target activations) and a
``head`` (activations -> logits) so one forward pass can serve both the prediction and the CAM.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from classifier.errors import BundleError


@dataclass(frozen=True)
class ArchSpec:
    builder: Callable[..., nn.Module]
    family: str  # "mobilenet_v2", "mobilenet_v3" or "vgg"
    weights: str  # torchvision weights enum name, for deployments that have the files


ARCHS: dict[str, ArchSpec] = {
    "mobilenet_v2": ArchSpec(models.mobilenet_v2, "mobilenet_v2", "MobileNet_V2_Weights"),
    "mobilenet_v3_large": ArchSpec(
        models.mobilenet_v3_large, "mobilenet_v3", "MobileNet_V3_Large_Weights"
    ),
    "mobilenet_v3_small": ArchSpec(
        models.mobilenet_v3_small, "mobilenet_v3", "MobileNet_V3_Small_Weights"
    ),
    "vgg11_bn": ArchSpec(models.vgg11_bn, "vgg", "VGG11_BN_Weights"),
    "vgg13_bn": ArchSpec(models.vgg13_bn, "vgg", "VGG13_BN_Weights"),
    "vgg16_bn": ArchSpec(models.vgg16_bn, "vgg", "VGG16_BN_Weights"),
    "vgg16": ArchSpec(models.vgg16, "vgg", "VGG16_Weights"),
    "vgg19_bn": ArchSpec(models.vgg19_bn, "vgg", "VGG19_BN_Weights"),
}


def _spec(arch: str) -> ArchSpec:
    try:
        return ARCHS[arch]
    except KeyError as exc:
        raise BundleError(f"unknown architecture {arch!r}; known: {sorted(ARCHS)}") from exc


def _load_init(model: nn.Module, spec: ArchSpec, init: str) -> None:
    """Load ImageNet weights: a local .pth state dict, or a torchvision weights enum name.

    A weights enum is looked up in torch's local checkpoint cache (``TORCH_HOME``) and loaded
    from there; if the file is not cached this raises instead of downloading it.
    """
    path = Path(init)
    if path.suffix in {".pth", ".pt"}:
        if not path.is_file():
            raise BundleError(f"init weights not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        enum_name, _, member = init.partition(".")
        weights = getattr(models, enum_name or spec.weights)[member or "DEFAULT"]
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.is_file():
            raise BundleError(f"{weights} is not in the local cache {cached}; no download here")
        state = torch.load(cached, map_location="cpu", weights_only=True)
    model.load_state_dict(state)


def build_member(
    arch: str, num_classes: int, *, head: str = "pooled", init: str | None = None
) -> nn.Module:
    """Build a torchvision network for ``num_classes`` outputs.

    ``head="pooled"`` replaces VGG's 4096-wide classifier with global pooling and one linear
    layer (trains far better from scratch); ``"classic"`` keeps it and swaps the last layer.
    ``init`` optionally loads ImageNet weights before the head is replaced.
    """
    spec = _spec(arch)
    model = spec.builder(weights=None)
    if init:
        _load_init(model, spec, init)
    if spec.family == "vgg":
        if head == "pooled":
            width = model.classifier[0].in_features // (7 * 7)
            model.avgpool = nn.AdaptiveAvgPool2d(1)
            model.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(width, num_classes))
        elif head == "classic":
            model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
        else:
            raise BundleError(f"unknown head {head!r}")
    else:
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)
    return model


def split_at_cam_layer(model: nn.Module, arch: str) -> tuple[nn.Sequential, nn.Sequential]:
    """Return (body, head) sharing the model's modules; body ends at the Grad-CAM layer.

    MobileNets: the last feature block (1280/960/576 channels, 7x7 at 224 px).
    VGG: the last ReLU of ``features`` (14x14 at 224 px), before the final max-pool, which
    gives twice the heatmap resolution of the pooled output at the same cost.
    """
    family = _spec(arch).family
    features = model.features
    if family == "vgg":
        last_relu = max(i for i, m in enumerate(features) if isinstance(m, nn.ReLU))
        body = nn.Sequential(*features[: last_relu + 1])
        head = nn.Sequential(
            *features[last_relu + 1 :], model.avgpool, nn.Flatten(1), model.classifier
        )
    elif family == "mobilenet_v2":
        body = nn.Sequential(*features)
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier)
    else:
        body = nn.Sequential(*features)
        head = nn.Sequential(model.avgpool, nn.Flatten(1), model.classifier)
    return body, head


def cam_layer_name(model: nn.Module, arch: str) -> str:
    """Dotted name of the Grad-CAM target layer inside ``model`` (recorded for provenance)."""
    body, _ = split_at_cam_layer(model, arch)
    target = body[-1]
    for name, module in model.named_modules():
        if module is target:
            return name
    raise BundleError(f"cannot locate the CAM layer of {arch}")
