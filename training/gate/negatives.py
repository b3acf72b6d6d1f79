"""Images that are not frontal chest X-rays, for the "not assessable" gate: the real ones of
a not-cxr manifest, and kinds made here from frontal films, from files that packages this
project already depends on ship (pydicom's test DICOM, matplotlib's sample data and font),
and from nothing (noise, blanks, typed pages).

Every item has an evaluation ``kind`` (what leave-one-kind-out holds out), the gate ``label``
it trains (``classifier.gate.KINDS``) and a ``group`` that splits it: a generated image
shares the patient of the film it was made from, an image from a package file shares that
file's group, so no source is on both sides of a split.
"""

import csv
import gzip
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

# Evaluation kind -> gate label.
KIND_LABELS = {
    "lateral_cxr": "lateral_cxr",
    "ct_axial": "other_modality",
    "ct_coronal": "other_modality",
    "ct_mr_us_nm": "other_modality",
    "rotated": "other_radiograph",
    "inverted": "other_radiograph",
    "crop": "other_radiograph",
    "noise": "photo_document",
    "blank": "photo_document",
    "text": "photo_document",
    "photo": "photo_document",
}
# pydicom's test files of other modalities: CT, MR, ultrasound, nuclear medicine.
PYDICOM_FILES = (
    "CT_small.dcm",
    "J2K_pixelrep_mismatch.dcm",
    "693_J2KI.dcm",
    "MR_small.dcm",
    "examples_palette.dcm",
    "examples_jpeg2k.dcm",
    "examples_ybr_color.dcm",
    "JPGExtended.dcm",
)
WORDS = [
    "patient",
    "report",
    "findings",
    "impression",
    "history",
    "technique",
    "comparison",
    "the",
    "of",
    "and",
    "with",
    "no",
    "acute",
    "cardiopulmonary",
    "process",
    "lungs",
    "are",
    "clear",
    "heart",
    "size",
    "normal",
    "mediastinum",
    "pleural",
    "effusion",
    "pneumothorax",
    "consolidation",
    "opacity",
    "right",
    "left",
    "lower",
    "lobe",
    "invoice",
    "total",
    "date",
    "signature",
    "page",
    "referral",
    "dear",
    "colleague",
    "thank",
    "you",
    "for",
    "seeing",
    "this",
]


@dataclass(frozen=True)
class Negative:
    image: Image.Image
    kind: str
    group: str  # the patient or source file it shares a split with

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]


def real_negatives(manifest: Path) -> list[Negative]:
    """The rows of a not-cxr manifest (file, kind, patient_id)."""
    out = []
    with Path(manifest).open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["kind"] not in KIND_LABELS:
                raise ValueError(f"{manifest}: unknown kind {row['kind']!r}")
            with Image.open(Path(manifest).parent / row["file"]) as img:
                out.append(Negative(img.convert("L"), row["kind"], row["patient_id"]))
    return out


def from_films(films: list[tuple[Image.Image, str]], per_kind: int, seed: int) -> list[Negative]:
    """Rotated, inverted and heavily cropped frontal films (image, patient id)."""
    rng = random.Random(seed)
    out = []
    for kind in ("rotated", "inverted", "crop"):
        for image, patient in rng.sample(films, min(per_kind, len(films))):
            out.append(Negative(_derive(image, kind, rng), kind, patient))
    return out


def _derive(image: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    gray = image.convert("L")
    if kind == "rotated":
        return gray.rotate(rng.choice([90, 180, 270]), expand=True)
    if kind == "inverted":
        return ImageOps.invert(gray)
    width, height = gray.size
    side = rng.uniform(0.3, 0.55)
    w, h = max(32, int(width * side)), max(32, int(height * side * rng.uniform(0.8, 1.25)))
    h = min(h, height)
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    return gray.crop((left, top, left + w, top + h)).resize((256, round(256 * h / w)))


def synthetic(count: int, seed: int) -> list[Negative]:
    """Noise, blanks and typed pages, ``count`` of each, in groups of ten."""
    rng = random.Random(seed)
    font_file = _font_file()
    out = []
    for i in range(count):
        group = f"synthetic-{seed}-{i // 10}"
        out.append(Negative(_noise(rng), "noise", group))
        out.append(Negative(_blank(rng), "blank", group))
        out.append(Negative(_page(rng, font_file), "text", group))
    return out


def _size(rng: random.Random) -> tuple[int, int]:
    return 256, rng.randint(256, 340)


def _noise(rng: random.Random) -> Image.Image:
    w, h = _size(rng)
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    kind = rng.choice(["gauss", "uniform", "smooth", "salt"])
    if kind == "salt":
        array = (nrng.random((h, w)) < rng.uniform(0.05, 0.5)) * 255.0
    elif kind == "uniform":
        array = nrng.random((h, w)) * 255.0
    else:
        array = nrng.normal(128, rng.uniform(20, 70), (h, w))
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    if kind == "smooth":
        image = ImageOps.autocontrast(image.filter(ImageFilter.GaussianBlur(rng.uniform(2, 12))))
    return image


def _blank(rng: random.Random) -> Image.Image:
    w, h = _size(rng)
    level = rng.uniform(0, 255)
    ramp = np.linspace(0, rng.uniform(-8, 8), w)[None, :]
    array = level + ramp + np.random.default_rng(rng.randrange(1 << 30)).normal(0, 1.5, (h, w))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _font_file() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _page(rng: random.Random, font_file: Path) -> Image.Image:
    w, h = 512, rng.randint(512, 700)
    image = Image.new("L", (w, h), color=rng.randint(200, 255))
    draw = ImageDraw.Draw(image)
    size = rng.randint(12, 30)
    font = ImageFont.truetype(str(font_file), size)
    y = rng.randint(10, 60)
    while y < h - size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))
        draw.text((rng.randint(10, 40), y), line, fill=rng.randint(0, 60), font=font)
        y += int(size * rng.uniform(1.3, 2.2))
    if rng.random() < 0.3:
        image = ImageOps.invert(image)
    return image.resize((256, round(256 * h / w)))


def package_images(variants: int, seed: int) -> list[Negative]:
    """Other modalities from pydicom's test files and matplotlib's MR sample, and grey
    photographs from matplotlib's sample images, each source in ``variants`` random views."""
    rng = random.Random(seed)
    sources = [(img, "ct_mr_us_nm", f"pydicom-{name}") for name, img in _pydicom_images()]
    sources.append((_mpl_mr(), "ct_mr_us_nm", "matplotlib-s1045"))
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        sources.append((_mpl_sample(name), "photo", f"matplotlib-{name}"))
    out = []
    for image, kind, group in sources:
        for _ in range(variants):
            out.append(Negative(_view(image, rng), kind, group))
    return out


def _view(image: Image.Image, rng: random.Random) -> Image.Image:
    """A random crop (50-100% a side), flip and contrast of a source image, in grey."""
    gray = image.convert("L")
    width, height = gray.size
    w, h = int(width * rng.uniform(0.5, 1.0)), int(height * rng.uniform(0.5, 1.0))
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    view = gray.crop((left, top, left + w, top + h))
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    view = ImageOps.autocontrast(view, cutoff=rng.uniform(0, 2))
    scale = 256 / min(view.size)
    return view.resize((max(32, round(view.width * scale)), max(32, round(view.height * scale))))


def _pydicom_images() -> list[tuple[str, Image.Image]]:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    out = []
    for name in PYDICOM_FILES:
        ds = dcmread(get_testdata_file(name))
        array = ds.pixel_array
        if getattr(ds, "NumberOfFrames", 1) > 1:
            array = array[len(array) // 2]
        out.append((name, _to_image(array)))
    return out


def _mpl_mr() -> Image.Image:
    with gzip.open(_mpl_path("s1045.ima.gz")) as fh:
        array = np.frombuffer(fh.read(), np.uint16).reshape(256, 256)
    return _to_image(array)


def _mpl_sample(name: str) -> Image.Image:
    with Image.open(_mpl_path(name)) as img:
        return img.convert("RGB")


def _mpl_path(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


def _to_image(array: np.ndarray) -> Image.Image:
    """Any 2-D or colour pixel array -> an 8-bit grey image, 0.5-99.5 percentile window."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3:
        array = array.mean(axis=-1)
    low, high = np.percentile(array, [0.5, 99.5])
    scaled = np.clip((array - low) / max(high - low, 1e-6), 0, 1) * 255
    return Image.fromarray(scaled.astype(np.uint8))
