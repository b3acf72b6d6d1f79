"""Chest films for the DICOM network tests, made from a real sample X-ray (tests/data)."""

from pathlib import Path

import numpy as np
from pydicom import Dataset

from tests.conftest import SAMPLE_DIR
from tests.xrayweb.dicom_corpus import broken_cases, dataset, source_image, to_bytes, valid_cases


def grey(index: int = 0, width: int = 128) -> np.ndarray:
    return source_image(sorted((SAMPLE_DIR / "images").glob("*.jpg"))[index], width=width)


def film(*, index: int = 0, width: int = 128, **header) -> Dataset:
    """A 12-bit DX film, uncompressed, with new UIDs; ``header`` overrides fields (None drops)."""
    ds = dataset(grey(index, width), bits=12)
    for keyword, value in header.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def write(folder: Path, name: str, ds_or_bytes) -> Path:
    path = folder / name
    path.write_bytes(ds_or_bytes if isinstance(ds_or_bytes, bytes) else to_bytes(ds_or_bytes))
    return path


def compressed(name: str) -> bytes:
    """One of the corpus's compressed films by transfer syntax name (e.g. "JPEG-LS Lossless")."""
    for case in valid_cases(grey()):
        if name in case.name:
            return case.data
    raise KeyError(name)


def broken(name: str) -> bytes:
    return broken_cases(grey())[name][0]
