"""Images -> normalized model input. One definition, used by inference and training."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from classifier.errors import ImageDecodeError


def to_gray_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """A PIL image or 2-D/3-D array of any dtype -> float32 HxW in [0, 1]."""
    if isinstance(image, Image.Image):
        if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
            array = np.asarray(image, dtype=np.float32)
            peak = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
            return np.clip(array / peak, 0.0, 1.0)
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        channels = array[..., :3]
    elif array.ndim == 2:
        channels = array[..., None]
    else:
        raise ImageDecodeError(f"unsupported array shape {array.shape}")
    if min(array.shape[:2]) < 1:
        raise ImageDecodeError(f"unsupported array shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        scaled = (channels.astype(np.float32) - info.min) / float(info.max - info.min)
        return scaled.mean(axis=-1)
    array = channels.astype(np.float32).mean(axis=-1)
    if not np.isfinite(array).all():
        raise ImageDecodeError("image contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low >= 0.0 and high <= 1.0:
        return array
    return (array - low) / max(high - low, 1e-6)


def resize_gray(array: np.ndarray, size: int) -> torch.Tensor:
    """HxW float array -> 1xSxS float tensor, antialiased bilinear (the aspect is squashed)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))[None, None]
    out = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True)
    return out[0].clamp_(0.0, 1.0)


def normalize(batch: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Nx1xSxS in [0, 1] -> Nx3xSxS normalized with the bundle's per-channel statistics."""
    mean_t = torch.tensor(mean, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    return (batch.expand(-1, 3, -1, -1) - mean_t) / std_t


def gray_batch(arrays: list[np.ndarray], size: int) -> torch.Tensor:
    """Grey HxW arrays in [0, 1] -> Nx1xSxS, each resized as ``resize_gray`` does."""
    return torch.stack([resize_gray(a, size) for a in arrays])


def prepare_batch(
    images: list[Image.Image | np.ndarray], size: int, mean: list[float], std: list[float]
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    arrays = [to_gray_array(img) for img in images]
    shapes = [a.shape for a in arrays]
    return normalize(gray_batch(arrays, size), mean, std), shapes
