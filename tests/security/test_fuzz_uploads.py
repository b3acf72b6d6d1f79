"""Fuzzing the upload path: bytes -> validated image (PNG, JPEG or DICOM) -> model tensor.
Whatever the bytes, the result is either a clear 4xx (ApplicationError) or a finite tensor of
the model's input shape; anything else (a crash, a 5xx) is a bug, and its input is added here
as an @example so it stays fixed.

make test runs FUZZ_EXAMPLES=150 per test (seconds); for a longer run:
  FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/security/test_fuzz_uploads.py"""

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from classifier.preprocess import prepare_batch
from tests.xrayweb.dicom_corpus import dataset, to_bytes
from xrayweb.errors import ApplicationError
from xrayweb.studies.dicom import dicom_decode, looks_like_dicom
from xrayweb.studies.images import image_validate

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 150)),
    deadline=None,
    database=None,  # no .hypothesis/ folder in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SIZE = 64


def _seed_image() -> np.ndarray:
    y, x = np.mgrid[0:96, 0:80]
    return ((x * 3 + y * 2) % 256).astype(np.uint8)


def _encoded(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(_seed_image()).save(out, format=fmt)
    return out.getvalue()


SEEDS = {
    "x.png": _encoded("PNG"),
    "x.jpg": _encoded("JPEG"),
    "x.dcm": to_bytes(dataset(_seed_image(), bits=12)),
}


def upload_to_tensor(data: bytes, filename: str):
    """The server's path from uploaded bytes to the model's input."""
    if looks_like_dicom(data, filename):
        data = dicom_decode(data=data, filename=filename).png
    validated = image_validate(data=data, filename=filename)
    image = Image.open(io.BytesIO(validated.data))
    image.load()
    batch, _ = prepare_batch([image], SIZE, [0.5] * 3, [0.25] * 3)
    return batch


def _check(data: bytes, filename: str) -> None:
    try:
        batch = upload_to_tensor(data, filename)
    except ApplicationError as exc:
        assert 400 <= exc.status < 500 and exc.message
        return
    assert tuple(batch.shape) == (1, 3, SIZE, SIZE)
    assert bool(batch.isfinite().all())


@st.composite
def mutated(draw):
    """A valid seed file with a few byte flips, cuts and insertions."""
    filename = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[filename])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        op = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "truncate":
            del data[at:]
    return bytes(data), filename


def test_the_seed_files_pass():
    for filename, data in SEEDS.items():
        assert tuple(upload_to_tensor(data, filename).shape) == (1, 3, SIZE, SIZE)


@FUZZ
@given(mutated())
def test_mutated_files_give_a_tensor_or_a_clear_4xx(case):
    _check(*case)


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from(sorted(SEEDS)))
@example(b"", "x.png")
@example(b"DICM", "x.dcm")
def test_arbitrary_bytes_give_a_tensor_or_a_clear_4xx(data, filename):
    _check(data, filename)


@pytest.mark.parametrize("filename", sorted(SEEDS))
def test_every_prefix_of_a_seed_file_is_handled(filename):
    data = SEEDS[filename]
    for end in range(0, len(data), max(1, len(data) // 97)):
        _check(data[:end], filename)
