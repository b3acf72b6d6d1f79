"""Rendering agreement: the same film as hospitals send it must get the same label.

Each film is re-rendered the ways a department's systems produce it: a windowless 12-bit
DICOM, a 16-bit DICOM with a narrow window, gamma 0.8 and 1.25, JPEG quality 60, a 6% black
border, twice the size. Every rendering goes through the upload decoders (``image_validate``,
``dicom_decode``: the VOI, or the robust window where the file has none) and the worker's
Predictor, and its label is compared with the original's. ``manage.py renderings`` prints it.
"""

import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from xrayweb.studies.dicom import dicom_decode
from xrayweb.studies.images import image_validate

RENDERINGS = (
    "dicom_12bit_no_window",
    "dicom_16bit_narrow_window",
    "gamma_0.8",
    "gamma_1.25",
    "jpeg_q60",
    "black_border_6pct",
    "twice_the_size",
)


def _png(grey: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(grey, mode="L").save(out, "PNG")
    return out.getvalue()


def _dicom(stored: np.ndarray, bits: int, **window) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = (
        uid.DigitalXRayImageStorageForPresentation
    )
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid.generate_uid(), uid.generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.PatientID = "RENDERING"
    for keyword, value in window.items():
        setattr(ds, keyword, value)
    ds.set_pixel_data(stored.astype(np.uint16), "MONOCHROME2", bits)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def render(grey: np.ndarray, name: str) -> bytes:
    """One rendering of an 8-bit grey film, as the bytes a hospital would upload."""
    level = grey.astype(np.float64) / 255.0
    if name == "dicom_12bit_no_window":
        return _dicom(np.round(level * 4095), 12)
    if name == "dicom_16bit_narrow_window":
        stored = np.round(level * 65535)
        low, high = np.percentile(stored, [5, 95])
        return _dicom(
            stored, 16, WindowCenter=f"{(low + high) / 2:.1f}", WindowWidth=f"{high - low:.1f}"
        )
    if name.startswith("gamma_"):
        gamma = float(name.removeprefix("gamma_"))
        return _png(np.round(255 * level**gamma).astype(np.uint8))
    if name == "jpeg_q60":
        out = io.BytesIO()
        Image.fromarray(grey, mode="L").save(out, "JPEG", quality=60)
        return out.getvalue()
    if name == "black_border_6pct":
        dy, dx = round(0.06 * grey.shape[0]), round(0.06 * grey.shape[1])
        return _png(np.pad(grey, ((dy, dy), (dx, dx))))
    if name == "twice_the_size":
        image = Image.fromarray(grey, mode="L")
        return _png(np.asarray(image.resize((2 * image.width, 2 * image.height), Image.BICUBIC)))
    raise ValueError(f"unknown rendering {name!r}; one of {RENDERINGS}")


def decoded(data: bytes, name: str) -> Image.Image:
    """What the worker reads for an upload of these bytes: the stored PNG for a DICOM file,
    the validated PNG or JPEG itself otherwise."""
    if name.startswith("dicom_"):
        data = dicom_decode(data=data, filename=f"{name}.dcm").png
    else:
        image_validate(data=data, filename=name)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


def rendering_agreement(*, bundle: Path, films: list[Path], device=None) -> dict:
    """Label agreement of every rendering with the original, per rendering and overall."""
    from classifier import load_bundle  # torch: only when this runs

    predictor = load_bundle(bundle, device=device)
    labels, changed = {}, []
    originals = []
    for path in films:
        data = Path(path).read_bytes()
        image_validate(data=data, filename=Path(path).name)
        with Image.open(io.BytesIO(data)) as image:
            originals.append(np.asarray(image.convert("L")))
    labels["original"] = [p.label for p in predictor.predict(originals, cam=False)]
    for name in RENDERINGS:
        images = [decoded(render(grey, name), name) for grey in originals]
        labels[name] = [p.label for p in predictor.predict(images, cam=False)]
        changed += [
            {"film": Path(films[i]).name, "rendering": name, "from": before, "to": after}
            for i, (before, after) in enumerate(zip(labels["original"], labels[name], strict=True))
            if before != after
        ]
    per_rendering = {
        name: float(
            np.mean([a == b for a, b in zip(labels["original"], labels[name], strict=True)])
        )
        for name in RENDERINGS
    }
    pairs = len(films) * len(RENDERINGS)
    return {
        "films": len(films),
        "agreement": 1.0 - len(changed) / pairs if pairs else None,
        "per_rendering": per_rendering,
        "original_labels": dict(Counter(labels["original"])),
        "changed": changed,
    }
