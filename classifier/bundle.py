"""Save and load model bundles: every member's weights plus metadata in one safetensors file.

A bundle may carry the lung segmenter too (weights under ``segmenter.``). The segmenter is
also saved on its own by ``python -m training segment``, under its own metadata key, and
joins a classifier bundle with ``python -m training attach-segmenter`` or ``train --segmenter``.
"""

import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from classifier.errors import BundleError
from classifier.gate import (
    DISTANCE_KEYS,
    GATE_PREFIX,
    FeatureDistance,
    GateNet,
    GateSpec,
    gate_net,
)
from classifier.metadata import (
    METADATA_KEY,
    SEGMENTER_KEY,
    BundleMetadata,
    bundle_sha256,
    read_json_metadata,
    read_metadata,
)
from classifier.networks import build_member
from classifier.segmentation import SEGMENTER_PREFIX, SegmenterSpec, unet


def _tensors(modules: dict[str, nn.Module], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, model in modules.items():
        for key, value in model.state_dict().items():
            value = value.detach().cpu()
            if value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{name}.{key}"] = value.contiguous()
    return tensors


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; workers may run as another user
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return bundle_sha256(path)


def _read(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"cannot read weights from {path}: {exc}") from exc


def _fill(model: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, what: str) -> None:
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{what} weights do not fit: {exc}") from exc


def save_bundle(
    path: Path,
    members: dict[str, nn.Module],
    meta: BundleMetadata,
    *,
    dtype: torch.dtype = torch.float16,
    segmenter: tuple[SegmenterSpec, nn.Module] | None = None,
    gate: "Gate | None" = None,
) -> str:
    """Write the bundle atomically and return its sha256. Float weights are stored as ``dtype``.

    ``segmenter`` (spec, U-Net) and ``gate`` are stored with the members and named in the
    metadata.
    """
    names = [m.name for m in meta.members]
    if sorted(names) != sorted(members):
        raise BundleError(f"metadata members {names} do not match weights {sorted(members)}")
    if SEGMENTER_PREFIX[:-1] in members or GATE_PREFIX[:-1] in members:
        raise BundleError(f"{SEGMENTER_PREFIX[:-1]!r} and 'gate' are reserved")
    tensors = _tensors(members, dtype)
    if segmenter is not None:
        spec, model = segmenter
        meta = replace(meta, segmenter=asdict(spec))
        # float32: the segmenter is small, and its Dice was measured on these exact weights.
        tensors |= _tensors({SEGMENTER_PREFIX[:-1]: model}, torch.float32)
    elif meta.segmenter:
        raise BundleError("metadata names a segmenter but no segmenter weights were given")
    if gate is not None:
        meta = replace(meta, gate=asdict(gate.spec))
        tensors |= _tensors({"gate.net": gate.net, "gate.distance": gate.distance}, torch.float32)
    elif meta.gate:
        raise BundleError("metadata names a gate but no gate weights were given")
    return _write(path, tensors, {METADATA_KEY: meta.to_json()})


def load_bundle_members(
    path: Path, device: torch.device | str = "cpu"
) -> tuple[BundleMetadata, dict[str, nn.Module]]:
    """Load metadata and every member network (float32, eval mode) without touching the network."""
    meta = read_metadata(path)
    tensors = _read(path)
    members = {}
    for spec in meta.members:
        model = build_member(spec.arch, len(meta.classes), head=spec.head)
        _fill(model, tensors, f"{spec.name}.", f"member {spec.name!r} ({spec.arch})")
        members[spec.name] = model.to(device).eval()
    return meta, members


def save_segmenter(path: Path, model: nn.Module, spec: SegmenterSpec) -> str:
    """A segmenter on its own (float32), ready to join bundles; returns its sha256."""
    tensors = _tensors({SEGMENTER_PREFIX[:-1]: model}, torch.float32)
    return _write(path, tensors, {SEGMENTER_KEY: json.dumps(asdict(spec), sort_keys=True)})


def load_segmenter(
    path: Path, device: torch.device | str = "cpu"
) -> tuple[SegmenterSpec, nn.Module] | None:
    """The lung segmenter of a bundle, or of a segmenter file; None if a bundle has none."""
    data = read_json_metadata(path, SEGMENTER_KEY)
    if data is None:
        data = read_metadata(path).segmenter
        if not data:
            return None
    spec = SegmenterSpec.from_dict(data)
    model = unet(spec.unet_config())
    _fill(model, _read(path), SEGMENTER_PREFIX, "segmenter")
    return spec, model.to(device).eval()


@dataclass
class Gate:
    """A bundle's "not assessable" gate: its spec, network and feature-distance statistics."""

    spec: GateSpec
    net: GateNet
    distance: FeatureDistance | None = None


def load_gate(path: Path, device: torch.device | str = "cpu") -> Gate | None:
    """The gate of a bundle (None if it has none), float32, eval mode."""
    meta = read_metadata(path)
    if not meta.gate:
        return None
    spec = GateSpec.from_dict(meta.gate)
    tensors = _read(path)
    net = gate_net(spec)
    _fill(net, tensors, f"{GATE_PREFIX}net.", "gate network")
    distance = None
    prefix = f"{GATE_PREFIX}distance."
    if any(k.startswith(prefix) for k in tensors):
        basis = tensors.get(f"{prefix}basis")
        if basis is None or basis.ndim != 2:
            raise BundleError("gate distance statistics are incomplete")
        distance = FeatureDistance(*basis.shape)
        _fill(distance, tensors, prefix, "gate distance")
        if set(distance.state_dict()) != set(DISTANCE_KEYS):
            raise BundleError("gate distance statistics are incomplete")
        distance = distance.to(device).eval()
    return Gate(spec, net.to(device).eval(), distance)


def attach_segmenter(bundle: Path, segmenter: Path, out: Path) -> str:
    """Copy a bundle with the segmenter of ``segmenter`` (a segmenter file or a bundle)."""
    meta, members = load_bundle_members(bundle)
    loaded = load_segmenter(segmenter)
    if loaded is None:
        raise BundleError(f"{segmenter} holds no segmenter")
    return save_bundle(
        out, members, replace(meta, segmenter={}, gate={}), segmenter=loaded, gate=load_gate(bundle)
    )
