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


@st.composite
def odd_images(draw):
    """Images an upload may carry: any mode, size and aspect, constant, noisy or banded."""
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "I;16"]))
    width, height = draw(st.integers(32, 400)), draw(st.integers(32, 400))
    kind = draw(st.sampled_from(["constant", "noise", "bands"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    top = 65535 if mode == "I;16" else 255
    if kind == "constant":
        array = np.full((height, width), draw(st.integers(0, top)))
    elif kind == "noise":
        array = rng.integers(0, top + 1, (height, width))
    else:
        array = (np.arange(width)[None, :] // 7 % 2 * top).repeat(height, 0)
    dtype = np.uint16 if mode == "I;16" else np.uint8
    image = Image.fromarray(array.astype(dtype))
    return image if mode == "I;16" else image.convert(mode)


@pytest.fixture(scope="module")
def gated_predictor(tiny_bundle_with_gate):
    from classifier import load_bundle

    return load_bundle(tiny_bundle_with_gate, device="cpu", batch_size=1)


def _assess(predictor, data: bytes, filename: str) -> None:
    """Whatever passes the upload's validation, the gate judges: an assessment with reasons
    in words and finite scores, never an exception (the worker would fail the study)."""
    import json
    import math

    try:
        if looks_like_dicom(data, filename):
            data = dicom_decode(data=data, filename=filename).png
        validated = image_validate(data=data, filename=filename)
    except ApplicationError as exc:
        assert 400 <= exc.status < 500
        return
    image = Image.open(io.BytesIO(validated.data))
    image.load()
    (result,) = predictor.predict([image], cam=True)
    verdict = result.assessment.to_dict()
    assert isinstance(verdict["assessable"], bool)
    assert all(isinstance(r, str) and r for r in verdict["reasons"])
    assert verdict["assessable"] == (not verdict["reasons"])
    assert all(v is None or math.isfinite(v) for v in verdict["scores"].values())
    json.dumps(verdict)


@FUZZ
@given(case=mutated())
def test_the_gate_judges_every_mutated_file_that_passes_the_upload(gated_predictor, case):
    _assess(gated_predictor, *case)


@FUZZ
@given(image=odd_images(), fmt=st.sampled_from(["PNG", "JPEG"]))
def test_the_gate_judges_images_of_any_mode_size_and_content(gated_predictor, image, fmt):
    out = io.BytesIO()
    if fmt == "JPEG" and image.mode not in {"L", "RGB"}:
        image = image.convert("L" if image.mode in {"LA", "I;16"} else "RGB")
    image.save(out, format=fmt)
    _assess(gated_predictor, out.getvalue(), f"x.{fmt.lower()}")
