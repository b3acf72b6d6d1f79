"""Chest X-ray ensemble classifier: pure PyTorch, torchvision and pytorch-grad-cam.

Importing this package does not import torch; only ``load_bundle`` and the modules it pulls in
do. That keeps the web process (which only reads bundle metadata) free of torch.
"""

from pathlib import Path

from classifier.errors import BundleError, ClassifierError, ImageDecodeError
from classifier.metadata import BundleMetadata, bundle_sha256, read_metadata

DEFAULT_BUNDLE: Path = Path(__file__).resolve().parent / "models" / "default.safetensors"
# The product's four classes, in the order training gives them by default. A bundle carries
# its own label set, and everything that reads a bundle takes the classes from it; this is
# the one place the list is written out.
DEFAULT_CLASSES: tuple[str, ...] = ("covid19", "bacterial_pneumonia", "viral_pneumonia", "normal")

__all__ = [
    "DEFAULT_BUNDLE",
    "DEFAULT_CLASSES",
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
