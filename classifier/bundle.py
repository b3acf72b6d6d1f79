"""Save and load model bundles: every member's weights plus metadata in one safetensors file."""

import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from classifier.errors import BundleError
from classifier.metadata import METADATA_KEY, BundleMetadata, bundle_sha256, read_metadata
from classifier.networks import build_member


def save_bundle(
    path: Path,
    members: dict[str, nn.Module],
    meta: BundleMetadata,
    *,
    dtype: torch.dtype = torch.float16,
) -> str:
    """Write the bundle atomically and return its sha256. Float weights are stored as ``dtype``."""
    names = [m.name for m in meta.members]
    if sorted(names) != sorted(members):
        raise BundleError(f"metadata members {names} do not match weights {sorted(members)}")
    tensors = {}
    for name, model in members.items():
        for key, value in model.state_dict().items():
            value = value.detach().cpu()
            if value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{name}.{key}"] = value.contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={METADATA_KEY: meta.to_json()})
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; workers may run as another user
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return bundle_sha256(path)


def load_bundle_members(
    path: Path, device: torch.device | str = "cpu"
) -> tuple[BundleMetadata, dict[str, nn.Module]]:
    """Load metadata and every member network (float32, eval mode) without touching the network."""
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"cannot read weights from {path}: {exc}") from exc
    members = {}
    for spec in meta.members:
        model = build_member(spec.arch, len(meta.classes), head=spec.head)
        prefix = f"{spec.name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        own = model.state_dict()
        state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise BundleError(
                f"member {spec.name!r} weights do not fit {spec.arch}: {exc}"
            ) from exc
        members[spec.name] = model.to(device).eval()
    return meta, members
