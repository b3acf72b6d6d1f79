"""Bundle metadata, readable without torch.

A bundle is one safetensors file: every member's weights under ``<member>.<param>`` and a JSON
document under the ``xrayweb`` key of the header's ``__metadata__``. The safetensors header is
plain JSON behind an 8-byte length, so the web process can read class names and provenance
without importing torch.
"""

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from classifier.conformal import conformal_problem
from classifier.errors import BundleError

FORMAT_VERSION = 1
METADATA_KEY = "xrayweb"
# A segmenter on its own (from ``python -m training segment``), before it joins a bundle.
SEGMENTER_KEY = "xrayweb_segmenter"
_MAX_HEADER_BYTES = 100 * 1024 * 1024
# How a film's grey levels reach the model (classifier.preprocess.canonical). "as_is": the
# decoded levels scaled to [0, 1] (bundles without the canonical preprocessing).
# "equalize": per-image histogram equalisation after resizing, which maps any monotone
# rendering of a film (window, gamma, contrast, a windowless 12-bit DICOM) onto the same
# levels.
INTENSITIES = ("as_is", "equalize")
# What part of the film the model sees. "none": all of it, squashed to a square. "content":
# the film inside uniform border bands (black letterboxing, white collimator edges). "lungs":
# the predicted lungs' bounding box plus ``crop_margin``, inside the content box.
CROPS = ("none", "content", "lungs")


def seeing_problem(intensity: str, crop: str, has_segmenter: bool) -> str | None:
    """What is wrong with a way of seeing films (for bundles and training configs alike)."""
    if intensity not in INTENSITIES:
        return f"intensity must be one of {INTENSITIES}, not {intensity!r}"
    if crop not in CROPS:
        return f"crop must be one of {CROPS}, not {crop!r}"
    if crop == "lungs" and not has_segmenter:
        return "crop 'lungs' needs a lung segmenter"
    return None


@dataclass(frozen=True)
class MemberSpec:
    name: str
    arch: str
    head: str = "pooled"
    weight: float = 1.0
    temperature: float = 1.0  # member logits are divided by this (fitted on validation data)


@dataclass(frozen=True)
class BundleMetadata:
    classes: list[str]
    members: list[MemberSpec]
    input_size: int = 224
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    format_version: int = FORMAT_VERSION
    created_at: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Temperature applied to the ensemble's soft vote, fitted on validation data.
    ensemble_temperature: float = 1.0
    # class -> probability at or above which that class is predicted regardless of the argmax
    # (e.g. {"covid19": 0.2}: a missed case costs more than a false alarm).
    decision_thresholds: dict[str, float] = field(default_factory=dict)
    # The lung segmenter's SegmenterSpec as a dict ({} when the bundle has none); its weights
    # are stored under "segmenter." beside the members'.
    segmenter: dict[str, Any] = field(default_factory=dict)
    # The "not assessable" gate's GateSpec as a dict ({} when the bundle has none); its
    # network and distance statistics are stored under "gate." (classifier.gate).
    gate: dict[str, Any] = field(default_factory=dict)
    intensity: str = "as_is"
    crop: str = "none"
    crop_margin: float = 0.1
    # Conformal prediction sets' thresholds per coverage level ({} when the bundle has none;
    # classifier.conformal).
    conformal: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BundleMetadata":
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"unsupported bundle format version {version!r}")
        try:
            members = [MemberSpec(**m) for m in data["members"]]
            meta = cls(**{**data, "members": members})
        except (KeyError, TypeError) as exc:
            raise BundleError(f"bundle metadata is incomplete: {exc}") from exc
        if not meta.classes or len(set(meta.classes)) != len(meta.classes):
            raise BundleError("bundle classes must be a non-empty list of unique names")
        if not meta.members:
            raise BundleError("bundle has no ensemble members")
        problem = seeing_problem(meta.intensity, meta.crop, bool(meta.segmenter))
        if problem:
            raise BundleError(f"bundle metadata: {problem}")
        unknown = set(meta.decision_thresholds) - set(meta.classes)
        if unknown:
            raise BundleError(f"decision thresholds for unknown classes {sorted(unknown)}")
        problem = conformal_problem(meta.conformal, meta.classes)
        if problem:
            raise BundleError(f"bundle metadata: {problem}")
        return meta


def read_header(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) != 8:
                raise BundleError(f"{path} is not a model bundle (too short)")
            (length,) = struct.unpack("<Q", raw_len)
            if length > _MAX_HEADER_BYTES:
                raise BundleError(f"{path} is not a model bundle (header length {length})")
            header = json.loads(fh.read(length))
    except FileNotFoundError as exc:
        raise BundleError(f"model bundle not found: {path}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not a model bundle (bad header)") from exc
    if not isinstance(header, dict):
        raise BundleError(f"{path} is not a model bundle (bad header)")
    return header


def read_json_metadata(path: Path, key: str) -> dict[str, Any] | None:
    """The JSON document stored under ``key`` in a safetensors header (None if absent)."""
    raw = (read_header(path).get("__metadata__") or {}).get(key)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} has unreadable metadata") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path} has unreadable metadata")
    return data


def read_metadata(path: Path) -> BundleMetadata:
    """Read a bundle's metadata without loading its weights (and without torch)."""
    data = read_json_metadata(path, METADATA_KEY)
    if data is None:
        raise BundleError(f"{path} has no xrayweb metadata")
    return BundleMetadata.from_dict(data)


def bundle_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
