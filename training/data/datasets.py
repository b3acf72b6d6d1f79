"""Films as tensors for training: loading, augmentation (renderings, crops), targets and
the dataset."""

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from classifier.errors import ImageDecodeError
from classifier.preprocess import (
    Box,
    canonical,
    content_box,
    full_box,
    lung_box,
    normalize,
    resize_gray,
    to_gray_array,
)
from classifier.preprocess import crop as crop_to
from classifier.segmentation import predict_masks
from training.data.manifests import PARTIAL, Record


def load_gray(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot read image {path}: {exc}") from exc


def make_augment(
    *,
    rotation: float = 10.0,
    zoom: float = 0.1,
    shear: float = 5.0,
    brightness: float = 0.2,
    contrast: float = 0.2,
    hflip: bool = False,
) -> v2.Transform:
    """Small rotations, zoom/shear and brightness/contrast as in the papers. Horizontal flip is
    off by default: a chest X-ray is not mirror-symmetric (the heart is on the left)."""
    steps = [
        v2.RandomAffine(
            degrees=rotation, translate=(0.05, 0.05), scale=(1.0 - zoom, 1.0 + zoom), shear=shear
        ),
        v2.ColorJitter(brightness=brightness, contrast=contrast),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class RenderAugment:
    """The renderings a film may arrive in, applied to a 1xSxS grey image in [0, 1] before the
    intensity normalisation: a narrower window, a gamma curve, a lower resolution, JPEG
    recompression and black border bands, each with probability ``p``."""

    def __init__(
        self,
        *,
        p: float = 0.3,
        window: float = 0.15,
        gamma: tuple[float, float] = (0.7, 1.4),
        resolution: float = 0.4,
        jpeg: tuple[int, int] = (40, 95),
        border: float = 0.08,
    ) -> None:
        self.p, self.window, self.gamma = p, window, gamma
        self.resolution, self.jpeg, self.border = resolution, jpeg, border

    def _draw(self) -> bool:
        return bool(torch.rand(()) < self.p)

    def _uniform(self, low: float, high: float) -> float:
        return float(low + (high - low) * torch.rand(()))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        size = image.shape[-1]
        if self._draw():
            low, high = self._uniform(0, self.window), 1 - self._uniform(0, self.window)
            image = ((image - low) / (high - low)).clamp(0.0, 1.0)
        if self._draw():
            image = image.clamp_min(0.0) ** self._uniform(*self.gamma)
        if self._draw():
            small = max(8, round(size * self._uniform(self.resolution, 1.0)))
            image = F.interpolate(image[None], size=(small, small), mode="bilinear", antialias=True)
            image = F.interpolate(image, size=(size, size), mode="bilinear")[0]
        if self._draw():
            image = _jpeg(image, int(self._uniform(*self.jpeg)))
        if self._draw():
            image = image.clone()
            widths = (torch.rand(4) * self.border * size).long().tolist()
            sides = torch.rand(4) < 0.5
            top, bottom, left, right = (w if on else 0 for w, on in zip(widths, sides, strict=True))
            image[..., :top, :] = 0.0
            image[..., size - bottom :, :] = 0.0
            image[..., :, :left] = 0.0
            image[..., :, size - right :] = 0.0
        return image.clamp(0.0, 1.0)


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    pixels = (image[0] * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return torch.from_numpy(np.asarray(decoded.convert("L"), dtype=np.float32) / 255.0)[None]


def target_index(label: str, classes: list[str], not_covid_labels=()) -> int:
    """A label's class index; -1 for a label that only says "not covid19"."""
    if label in classes:
        return classes.index(label)
    if label in not_covid_labels:
        return PARTIAL
    raise ValueError(f"label {label!r} is neither a class nor a not-covid label")


def film_boxes(
    arrays: list[np.ndarray], crop: str, *, segmenter=None, margin: float = 0.1, device=None
) -> list[Box]:
    """The box of each film the model sees under ``crop`` (as the Predictor finds it)."""
    if crop == "none":
        return [full_box(a.shape) for a in arrays]
    contents = [content_box(a) for a in arrays]
    if crop == "content":
        return contents
    spec = segmenter[0]
    size = (spec.input_size, spec.input_size)
    masks = predict_masks(
        segmenter,
        [crop_to(a, c) for a, c in zip(arrays, contents, strict=True)],
        [size] * len(arrays),
        device=device or torch.device("cpu"),
    )
    return [lung_box(m, c, margin=margin) for m, c in zip(masks, contents, strict=True)]


class XrayDataset(Dataset):
    """Images decoded, cropped and resized once, held as uint8; the rendering augmentation,
    the intensity normalisation and the geometric augmentation run per item.

    Items are (image, target). With ``lung_masks`` (needs ``segmenter``) or ``sources`` they
    are (image, target, mask, source): the predicted lungs of the view the model sees, moved
    by the same geometric augmentation (zeros without ``lung_masks``), and the index of the
    record's source in ``sources`` (-1 without)."""

    def __init__(
        self,
        records: list[Record],
        classes: list[str],
        *,
        size: int,
        mean: list[float],
        std: list[float],
        augment: v2.Transform | None = None,
        render: RenderAugment | None = None,
        artifacts=None,
        intensity: str = "as_is",
        crop: str = "none",
        crop_margin: float = 0.1,
        segmenter=None,
        not_covid_labels=(),
        lung_masks: bool = False,
        sources: list[str] | None = None,
        lungs_only: float = 0.0,
    ) -> None:
        if lung_masks and segmenter is None:
            raise ValueError("lung masks need a lung segmenter")
        if lungs_only and not lung_masks:
            raise ValueError("lungs_only needs lung masks")
        self.records = records
        self.mean, self.std = mean, std
        self.targets = torch.tensor(
            [target_index(r.label, classes, not_covid_labels) for r in records], dtype=torch.long
        )
        images, masks = [], []
        for r in records:
            array = to_gray_array(load_gray(r.path))
            (box,) = film_boxes([array], crop, segmenter=segmenter, margin=crop_margin)
            view = crop_to(array, box)
            images.append((resize_gray(view, size) * 255).round().to(torch.uint8))
            if lung_masks:
                (mask,) = predict_masks(
                    segmenter, [view], [(size, size)], device=torch.device("cpu")
                )
                masks.append(torch.from_numpy(mask)[None])
        self.images = torch.stack(images)
        self.masks = torch.stack(masks) if lung_masks else None
        self.sources = sources
        self.source_ids = (
            torch.tensor([sources.index(r.source) if r.source in sources else -1 for r in records])
            if sources is not None
            else None
        )
        self.augment, self.render, self.intensity = augment, render, intensity
        self.artifacts = artifacts  # training.artifacts.ArtifactAugment, or None
        # With this probability an item shows only its lungs: outside them the normalised
        # image is 0 (the mean grey), as Predictor.lungs_only shows a film.
        self.lungs_only = lungs_only

    @property
    def extras(self) -> bool:
        return self.masks is not None or self.source_ids is not None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        image = self.images[index].float() / 255.0
        if self.render is not None:
            image = self.render(image)
        mask = self.masks[index] if self.masks is not None else None
        if self.artifacts is not None:
            image, mask = self.artifacts(image, mask)
        image = canonical(image[None], self.intensity)[0]
        if self.augment is not None:
            if mask is not None:
                image, mask = self.augment(image, tv_tensors.Mask(mask))
            else:
                image = self.augment(image)
            image = image.clamp(0.0, 1.0)
        image = normalize(image[None], self.mean, self.std)[0]
        if self.lungs_only and torch.rand(()) < self.lungs_only:
            image = image * (mask > 0.5)
        if not self.extras:
            return image, self.targets[index]
        mask = mask.float() if mask is not None else torch.zeros_like(image[:1])
        source = self.source_ids[index] if self.source_ids is not None else torch.tensor(-1)
        return image, self.targets[index], mask.as_subclass(torch.Tensor), source
