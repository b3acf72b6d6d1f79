"""Drawing what the collections differ by, so that none of it can stand in for the disease.

Every covid19 film we train on comes from web figures and teaching files; the others come
from two hospitals' archives. The marks of each (burned-in text and side markers, captions,
arrows and circles, tubes and ECG leads, tight crops and wide borders, vendor processing) are
cheaper cues than the lungs (DeGrave, Janizek & Lee, Nat. Mach. Intell. 2021; Zech et al.,
PLoS Med. 2018). Drawn at random on every class's films, they stop telling the classes apart.
"""

import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont

WORDS = ("L", "R", "AP", "PA", "PORTABLE", "SUPINE", "ERECT", "UPRIGHT", "SEMI-ERECT", "CR")


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2017, 2021)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, size))


class ArtifactAugment:
    """Applied to a 1xSxS grey image in [0, 1] (and, when given, its 1xSxS lung mask, moved
    by the same crop or border), before the intensity normalisation. Each kind of mark is
    drawn with probability ``p``."""

    def __init__(self, *, p: float = 0.25, seed: int | None = None) -> None:
        self.p = p
        self.rng = random.Random(seed)

    def _draw(self) -> bool:
        return self.rng.random() < self.p

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None):
        if self._draw():
            image, mask = self.reframe(image, mask)
        if self._draw():
            image = self.process(image)
        pixels = Image.fromarray((image[0].clamp(0, 1) * 255).round().byte().numpy(), mode="L")
        draw = ImageDraw.Draw(pixels)
        for kind in (self.markers, self.caption, self.pointers, self.lines):
            if self._draw():
                kind(draw, pixels.size[0])
        out = torch.from_numpy(np.asarray(pixels, dtype=np.float32) / 255.0)[None]
        return out, mask

    def _ink(self) -> int:
        return self.rng.choice((255, 255, 230, 0, 20))

    def markers(self, draw: ImageDraw.ImageDraw, size: int) -> None:
        """Side markers, view words and dates near the film's edges."""
        for _ in range(self.rng.randint(1, 3)):
            text = self.rng.choice((*WORDS, _date(self.rng), f"{self.rng.randint(0, 23)}:00"))
            font = _font(int(size * self.rng.uniform(0.05, 0.11)))
            x = self.rng.choice((self.rng.uniform(0.02, 0.2), self.rng.uniform(0.6, 0.85))) * size
            y = self.rng.choice((self.rng.uniform(0.02, 0.15), self.rng.uniform(0.75, 0.9))) * size
            draw.text((x, y), text, fill=self._ink(), font=font)

    def caption(self, draw: ImageDraw.ImageDraw, size: int) -> None:
        """A figure's caption band across the top or the bottom."""
        height = int(size * self.rng.uniform(0.06, 0.16))
        top = 0 if self.rng.random() < 0.5 else size - height
        band = self.rng.choice((0, 255, 245))
        draw.rectangle((0, top, size, top + height), fill=band)
        words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(2, 5)))
        draw.text((2, top + 1), words, fill=255 - band, font=_font(int(height * 0.7)))

    def pointers(self, draw: ImageDraw.ImageDraw, size: int) -> None:
        """Arrows and circles that teaching files put over the findings."""
        for _ in range(self.rng.randint(1, 3)):
            x, y = (self.rng.uniform(0.2, 0.8) * size for _ in range(2))
            width = self.rng.randint(1, max(1, size // 64))
            if self.rng.random() < 0.5:
                r = self.rng.uniform(0.04, 0.12) * size
                draw.ellipse((x - r, y - r, x + r, y + r), outline=self._ink(), width=width)
            else:
                angle = self.rng.uniform(0, 2 * np.pi)
                length = self.rng.uniform(0.08, 0.2) * size
                tail = (x + length * np.cos(angle), y + length * np.sin(angle))
                draw.line((tail, (x, y)), fill=self._ink(), width=width)
                for side in (-0.5, 0.5):
                    wing = (
                        x + 0.3 * length * np.cos(angle + side),
                        y + 0.3 * length * np.sin(angle + side),
                    )
                    draw.line(((x, y), wing), fill=self._ink(), width=width)

    def lines(self, draw: ImageDraw.ImageDraw, size: int) -> None:
        """Tubes, lines and ECG leads: thin bright curves, with a lead's round pad."""
        for _ in range(self.rng.randint(1, 3)):
            points = [(self.rng.uniform(0, 1) * size, self.rng.uniform(0, 1) * size)]
            for _ in range(self.rng.randint(2, 4)):
                x, y = points[-1]
                step = size * 0.25
                points.append(
                    (x + self.rng.uniform(-step, step), y + self.rng.uniform(-step, step))
                )
            fill = self.rng.randint(170, 255)
            draw.line(points, fill=fill, width=self.rng.randint(1, max(1, size // 80)))
            if self.rng.random() < 0.5:
                x, y = points[0]
                r = size * 0.025
                draw.ellipse((x - r, y - r, x + r, y + r), outline=fill, width=1)

    def reframe(self, image: torch.Tensor, mask: torch.Tensor | None):
        """A tight crop (zoomed in) or a wide border (shrunk onto a flat background)."""
        size, fill = image.shape[-1], 0.0
        if self.rng.random() < 0.5:
            keep = int(size * self.rng.uniform(0.78, 0.95))
            top, left = (self.rng.randint(0, size - keep) for _ in range(2))

            def move(t: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
                part = t[..., top : top + keep, left : left + keep]
                return F.interpolate(part[None].float(), size=(size, size), mode="bilinear")[0]

        else:
            inner = int(size * self.rng.uniform(0.7, 0.92))
            top, left = (self.rng.randint(0, size - inner) for _ in range(2))
            fill = self.rng.choice((0.0, 1.0, 0.5))

            def move(t: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
                small = F.interpolate(t[None].float(), size=(inner, inner), mode="bilinear")[0]
                out = torch.full_like(t, fill, dtype=torch.float32)
                out[..., top : top + inner, left : left + inner] = small
                return out

        moved = None if mask is None else (move(mask.float()) > 0.5).to(mask.dtype)
        image = move(image, fill)  # the mask's border is never lung
        return image.clamp(0, 1), moved

    def process(self, image: torch.Tensor) -> torch.Tensor:
        """Vendor-like processing: unsharp masking, or a tone curve (LUT)."""
        if self.rng.random() < 0.5:
            pixels = Image.fromarray((image[0] * 255).round().byte().numpy(), mode="L")
            radius = self.rng.uniform(1.0, 4.0)
            sharp = pixels.filter(
                ImageFilter.UnsharpMask(radius=radius, percent=self.rng.randint(60, 200))
            )
            return torch.from_numpy(np.asarray(sharp, dtype=np.float32) / 255.0)[None]
        # A smooth S-shaped or shouldered tone curve through (0, 0) and (1, 1).
        gain = self.rng.uniform(3.0, 9.0)
        mid = self.rng.uniform(0.35, 0.65)
        curve = torch.sigmoid(gain * (image - mid))
        low, high = (
            torch.sigmoid(torch.tensor(-gain * mid)),
            torch.sigmoid(torch.tensor(gain * (1 - mid))),
        )
        return ((curve - low) / (high - low)).clamp(0, 1)
