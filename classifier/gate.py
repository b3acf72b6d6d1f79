"""The "not assessable" gate: what the model cannot read, it says so instead of guessing.

Four layers, each with its own words for the person reading the result:
1. deterministic checks on the decoded image (colour, near-constant, aspect ratio);
2. a small CNN trained from scratch on the opencxr label pattern (frontal chest X-ray,
   lateral chest X-ray, other radiograph, CT/MR/other modality, photo or document);
3. a feature distance (Mahalanobis with Ledoit-Wolf shrinkage, low rank) on the ensemble's
   own pooled features, fitted on its training split;
4. a lung-field check on the bundle's lung segmenter: both lungs in view, plausible area.
Low ensemble confidence is not a layer: it is a flag for the reader, never a refusal.

The gate's network and its distance statistics ride inside the classifier bundle (tensors
under ``gate.``), its thresholds and measured figures in the bundle's metadata (``gate``).
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from classifier.errors import BundleError

GATE_PREFIX = "gate."
DISTANCE_KEYS = ("mean", "basis", "scale", "tail")
# The opencxr label pattern; index 0 is what the product reads.
KINDS = ("frontal_cxr", "lateral_cxr", "other_radiograph", "other_modality", "photo_document")
KIND_WORDS = {
    "lateral_cxr": "looks like a lateral chest film",
    "other_radiograph": (
        "does not look like a frontal chest film (another body part, rotated, inverted or cropped)"
    ),
    "other_modality": "looks like a CT slice or another modality, not a radiograph",
    "photo_document": "looks like a photograph or a document, not an X-ray",
}
UNLIKE_TRAINING = "unlike the films the model was trained on"


@dataclass(frozen=True)
class Limits:
    """The deterministic checks' limits (grey levels in [0, 1])."""

    max_chroma: float = 0.06  # mean |R-G|, |G-B|, |B-R|: above it, a colour image
    # The 1st to 99th percentile of the grey levels, on the pixel type's own scale: below it,
    # near-constant (a 12-bit film in 16-bit pixels still spans 0.06).
    min_span: float = 0.02
    max_aspect: float = 3.5  # longer side over shorter side (Kermany has frontal films at 3.2)


@dataclass(frozen=True)
class GateSpec:
    """A gate's metadata: the network, its thresholds and the figures measured for it."""

    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    input_size: int = 64
    limits: dict[str, float] = field(default_factory=lambda: asdict(Limits()))
    # Keep a film only if p(frontal_cxr) >= min_frontal, its feature distance <= max_distance,
    # and (with a lung mask) min_lung_area <= lung area <= max_lung_area and each half of the
    # image holds at least min_lung_side of its own area as lung.
    min_frontal: float = 0.5
    max_distance: float | None = None
    min_lung_area: float | None = None
    max_lung_area: float | None = None
    min_lung_side: float | None = None
    # ...and the smaller half's lung area is at least this share of the larger half's (a
    # lateral film's one lung shadow sits off to one side or in the middle).
    min_lung_balance: float | None = None
    created_at: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # What the drift monitor compares new films with (training.gate.reference): the training
    # films' feature distances as quantiles, and the validation films' share beyond their 95th
    # percentile, prediction mix, mean confidence and agreement. {} in older bundles.
    reference: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GateSpec":
        try:
            spec = cls(**data)
            Limits(**spec.limits)
        except TypeError as exc:
            raise BundleError(f"gate metadata is incomplete: {exc}") from exc
        if not spec.kinds or spec.kinds[0] != "frontal_cxr":
            raise BundleError("a gate's first kind must be frontal_cxr")
        return spec


@dataclass
class Assessment:
    """Whether the model can read an image, why not, and the scores that decided it."""

    assessable: bool
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"assessable": self.assessable, "reasons": list(self.reasons), "scores": self.scores}


def image_checks(
    image: Image.Image | np.ndarray, gray: np.ndarray, limits: Limits
) -> tuple[list[str], dict]:
    """The deterministic checks: reasons and scores. ``gray`` is the image as
    ``classifier.preprocess.to_gray_array`` made it; the colour check reads ``image`` itself.
    Large images are judged on every n-th pixel (at most about 512 a side)."""
    height, width = gray.shape
    aspect = max(height, width) / max(1, min(height, width))
    step = max(1, max(height, width) // 512)
    low, high = np.percentile(gray[::step, ::step], [1, 99])
    span = float(high - low)
    chroma = _chroma(image, step)
    reasons = []
    if chroma > limits.max_chroma:
        reasons.append("a colour image (X-rays are grey)")
    if span < limits.min_span:
        reasons.append("a near-constant image")
    if aspect > limits.max_aspect:
        reasons.append(f"an implausible aspect ratio for a chest film ({aspect:.1f}:1)")
    return reasons, {"chroma": round(chroma, 4), "span": round(span, 4), "aspect": round(aspect, 3)}


def _chroma(image: Image.Image | np.ndarray, step: int) -> float:
    """Mean |R-G|, |G-B|, |B-R| on a 0-1 scale; 0 for an image with one channel."""
    if isinstance(image, Image.Image):
        if image.mode not in {"RGB", "RGBA", "P", "CMYK", "YCbCr"}:
            return 0.0
        rgb = np.asarray(image.convert("RGB"))[::step, ::step].astype(np.float32) / 255.0
    else:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[-1] < 3:
            return 0.0
        rgb = array[::step, ::step, :3].astype(np.float32)
        if np.issubdtype(array.dtype, np.integer):
            rgb /= float(np.iinfo(array.dtype).max - np.iinfo(array.dtype).min)
        else:
            rgb = np.nan_to_num(rgb) / max(float(np.ptp(np.nan_to_num(rgb))), 1e-6)
    return float(np.abs(rgb - np.roll(rgb, 1, axis=-1)).mean())


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class GateNet(nn.Module):
    """A small CNN on one grey channel: conv-BN-ReLU-pool blocks, global pooling, linear."""

    def __init__(self, widths: list[int], n_kinds: int) -> None:
        super().__init__()
        layers, cin = [], 1
        for width in widths:
            layers.append(_block(cin, width))
            cin = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, n_kinds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def gate_net(spec: GateSpec) -> GateNet:
    """Build the gate's network (random weights; ``python -m training gate`` trains it)."""
    return GateNet(list(spec.widths), len(spec.kinds))


def gate_input(gray: torch.Tensor) -> torch.Tensor:
    """Nx1xSxS grey levels in [0, 1] -> the gate network's input. Min-max per image, so that
    the check sees the shape of the picture, not how bright it was rendered."""
    flat = gray.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return ((gray - low) / (high - low).clamp_min(1e-3) - 0.5) / 0.25


def pooled_features(activations: list[torch.Tensor]) -> torch.Tensor:
    """Each member's CAM-layer activations, average-pooled and L2-normalised, side by side."""
    parts = [F.normalize(a.float().mean(dim=(2, 3)), dim=1) for a in activations]
    return torch.cat(parts, dim=1)


class FeatureDistance(nn.Module):
    """A squared Mahalanobis distance under a shrunk covariance, kept low-rank: the top
    principal directions exactly (``basis``, their shrunk variances ``scale``), the rest of
    the space at one shrunk variance (``tail``)."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("basis", torch.zeros(dim, rank))
        self.register_buffer("scale", torch.ones(rank))
        self.register_buffer("tail", torch.ones(1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        centred = features.float() - self.mean
        along = centred @ self.basis
        residual = centred - along @ self.basis.T
        return (along.square() / self.scale).sum(1) + residual.square().sum(1) / self.tail


def lung_stats(mask: np.ndarray) -> dict[str, float]:
    """A lung mask's area share, the lung share of the image's left and right halves, and
    the smaller of those two over the larger (0 when there is no lung)."""
    half = mask.shape[1] // 2
    left = float(mask[:, :half].mean()) if half else 0.0
    right = float(mask[:, half:].mean())
    balance = min(left, right) / max(left, right) if max(left, right) > 0 else 0.0
    return {
        "lung_area": float(mask.mean()),
        "lung_left": left,
        "lung_right": right,
        "lung_balance": balance,
    }


def assess(
    spec: GateSpec,
    *,
    checks: list[str],
    scores: dict[str, Any],
    kind_probs: np.ndarray | None,
    distance: float | None,
    lungs: dict[str, float] | None,
) -> Assessment:
    """Every layer votes; any refusal makes the image not assessable, with its reason."""
    reasons = list(checks)
    scores = dict(scores)
    if kind_probs is not None:
        named = zip(spec.kinds, kind_probs, strict=True)
        scores |= {f"p_{k}": round(float(p), 4) for k, p in named}
        if kind_probs[0] < spec.min_frontal:
            top = int(np.argmax(kind_probs[1:])) + 1
            reasons.append(KIND_WORDS.get(spec.kinds[top], f"looks like {spec.kinds[top]}"))
    if distance is not None:
        scores["feature_distance"] = round(float(distance), 2)
        if spec.max_distance is not None and distance > spec.max_distance:
            reasons.append(UNLIKE_TRAINING)
    if lungs is not None:
        scores |= {k: round(v, 4) for k, v in lungs.items()}
        reasons += lung_reasons(spec, lungs)
    return Assessment(assessable=not reasons, reasons=reasons, scores=scores)


def lung_reasons(spec: GateSpec, lungs: dict[str, float]) -> list[str]:
    side = min(lungs["lung_left"], lungs["lung_right"])
    one_sided = spec.min_lung_side is not None and side < spec.min_lung_side
    if one_sided or (
        spec.min_lung_balance is not None and lungs.get("lung_balance", 1.0) < spec.min_lung_balance
    ):
        return ["both lungs are not in view"]
    area = lungs["lung_area"]
    if spec.min_lung_area is not None and area < spec.min_lung_area:
        return [f"too little lung found ({area:.0%} of the image)"]
    if spec.max_lung_area is not None and area > spec.max_lung_area:
        return [f"implausibly large lung fields ({area:.0%} of the image)"]
    return []
