"""Chest X-ray ensemble classifier: pure PyTorch, torchvision and pytorch-grad-cam.

Importing this package does not import torch; only ``load_bundle`` and the modules it pulls in
do. That keeps the web process (which only reads bundle metadata) free of torch.
"""

from pathlib import Path

from classifier.errors import BundleError, ClassifierError, ImageDecodeError
from classifier.metadata import BundleMetadata, bundle_sha256, read_metadata

DEFAULT_BUNDLE: Path = Path(__file__).resolve().parent / "models" / "default.safetensors"

__all__ = [
    "DEFAULT_BUNDLE",
    "BundleError",
    "BundleMetadata",
    "ClassifierError",
    "ImageDecodeError",
    "Prediction",
    "Predictor",
    "bundle_sha256",
    "load_bundle",
    "read_metadata",
]


def __getattr__(name: str):
    if name in {"load_bundle", "Predictor", "Prediction"}:
        from classifier import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'classifier' has no attribute {name!r}")
