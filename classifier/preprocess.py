"""Images -> normalized model input. One definition, used by inference and training."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from classifier.errors import ImageDecodeError
from classifier.metadata import INTENSITIES


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


EQUALIZE_BINS = 1024
# A lung box smaller than this share of the film is not trusted (a failed mask); the model
# then sees the content box.
MIN_LUNG_BOX = 0.05

Box = tuple[int, int, int, int]  # top, bottom, left, right (bottom and right exclusive)


def full_box(shape: tuple[int, int]) -> Box:
    return 0, int(shape[0]), 0, int(shape[1])


def _flat_run(flat: np.ndarray, limit: int) -> int:
    """How many leading entries are flat, at most ``limit``."""
    run = int(np.argmin(flat)) if not flat.all() else len(flat)
    return min(run, limit)


def content_box(array: np.ndarray, *, max_trim: float = 0.25, tolerance: float = 0.02) -> Box:
    """The film inside its uniform border bands: outer rows and columns whose spread is below
    ``tolerance`` of the image's range (black or white bands, letterboxing). At most
    ``max_trim`` of each dimension goes from each side."""
    height, width = array.shape
    span = float(array.max() - array.min())
    if span <= 0.0:
        return full_box(array.shape)
    top, bottom, left, right = full_box(array.shape)
    # Rows are judged within the columns kept so far and the other way round, twice: a white
    # band across the top must not hide a black band down the side.
    for _ in range(2):
        rows = array[:, left:right].std(axis=1) <= tolerance * span
        cols = array[top:bottom].std(axis=0) <= tolerance * span
        top = _flat_run(rows, int(max_trim * height))
        bottom = height - _flat_run(rows[::-1], int(max_trim * height))
        left = _flat_run(cols, int(max_trim * width))
        right = width - _flat_run(cols[::-1], int(max_trim * width))
    return top, bottom, left, right


def lung_box(mask: np.ndarray, within: Box, *, margin: float = 0.1) -> Box:
    """The lung mask's bounding box grown by ``margin`` of its size on each side, as a box of
    the full film. ``mask`` covers the box ``within`` at any scale. Falls back to ``within``
    when the mask is empty or its box implausibly small (a failed mask)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows) or not len(cols):
        return within
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (bottom - top) * (right - left) < MIN_LUNG_BOX * mask.size:
        return within
    dy, dx = margin * (bottom - top), margin * (right - left)
    fy = (within[1] - within[0]) / mask.shape[0]
    fx = (within[3] - within[2]) / mask.shape[1]
    return (
        within[0] + max(0, int((top - dy) * fy)),
        within[0] + min(within[1] - within[0], int(np.ceil((bottom + dy) * fy))),
        within[2] + max(0, int((left - dx) * fx)),
        within[2] + min(within[3] - within[2], int(np.ceil((right + dx) * fx))),
    )


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    top, bottom, left, right = box
    return array[top:bottom, left:right]


def scale_box(box: Box, source: tuple[int, int], target: tuple[int, int]) -> Box:
    """A box of an image of shape ``source`` in the coordinates of the same image at
    ``target`` (e.g. the heatmap's size); never empty."""
    fy, fx = target[0] / source[0], target[1] / source[1]
    top, left = int(box[0] * fy), int(box[2] * fx)
    bottom = min(target[0], max(top + 1, round(box[1] * fy)))
    right = min(target[1], max(left + 1, round(box[3] * fx)))
    return top, bottom, left, right


def paste(part: np.ndarray, box: Box, shape: tuple[int, int], fill=0) -> np.ndarray:
    """A map of ``box``'s size placed into a ``shape`` canvas filled with ``fill``."""
    canvas = np.full(shape, fill, dtype=part.dtype)
    top, bottom, left, right = box
    canvas[top:bottom, left:right] = part
    return canvas


def equalize(gray: torch.Tensor, bins: int = EQUALIZE_BINS) -> torch.Tensor:
    """Per-image histogram equalisation of Nx1xSxS grey levels: each pixel becomes the share
    of its image's pixels darker than it (ties share the midpoint), so the result depends on
    the order of the grey levels only, not on the curve that rendered them."""
    n = gray.shape[0]
    flat = gray.reshape(n, -1).float()
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    index = ((flat - low) / (high - low).clamp_min(1e-6) * (bins - 1)).round().long()
    counts = torch.zeros(n, bins, dtype=torch.float32, device=gray.device)
    counts.scatter_add_(1, index, torch.ones_like(flat))
    midpoint = (counts.cumsum(dim=1) - counts / 2) / flat.shape[1]
    return midpoint.gather(1, index).view_as(gray).to(gray.dtype)


def canonical(gray: torch.Tensor, intensity: str) -> torch.Tensor:
    """The bundle's intensity normalisation of Nx1xSxS grey levels in [0, 1]."""
    if intensity == "as_is":
        return gray
    if intensity == "equalize":
        return equalize(gray)
    raise ValueError(f"intensity must be one of {INTENSITIES}, not {intensity!r}")


def model_input(
    arrays: list[np.ndarray],
    boxes: list[Box],
    *,
    size: int,
    intensity: str,
    mean: list[float],
    std: list[float],
) -> torch.Tensor:
    """Grey HxW arrays and the box of each the model sees -> the normalized Nx3xSxS batch.
    Inference and training (``training.data.datasets``) both come through ``crop`` and
    ``canonical``."""
    gray = gray_batch([crop(a, b) for a, b in zip(arrays, boxes, strict=True)], size)
    return normalize(canonical(gray, intensity), mean, std)
