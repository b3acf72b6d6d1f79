"""Rendering agreement (issue 14): the same film sent as a hospital's systems send it gets the
same label from the shipped model, through the real upload decoders."""

import io
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from classifier import DEFAULT_BUNDLE
from tests.conftest import SAMPLE_DIR
from xrayweb.inference.renderings import RENDERINGS, decoded, render, rendering_agreement

FILM = np.linspace(0, 255, 64 * 48).reshape(64, 48).astype(np.uint8)


@pytest.mark.parametrize("name", RENDERINGS)
def test_each_rendering_decodes_to_the_film_it_came_from(name):
    image = np.asarray(decoded(render(FILM, name), name).convert("L"), dtype=np.float64)
    if name == "black_border_6pct":
        assert image.shape == (64 + 2 * 4, 48 + 2 * 3) and image[:4].max() == 0
        image = image[4:-4, 3:-3]
    elif name == "twice_the_size":
        assert image.shape == (128, 96)
        image = np.asarray(Image.fromarray(image.astype(np.uint8)).resize((48, 64)), float)
    assert image.shape == FILM.shape
    # The same order of grey levels (what the canonical equalisation depends on).
    order = np.corrcoef(np.argsort(np.argsort(image.ravel())), np.argsort(np.argsort(FILM.ravel())))
    assert order[0, 1] > 0.95


def test_the_narrow_window_dicom_clips_and_the_windowless_one_is_windowed_robustly():
    narrow = np.asarray(
        decoded(render(FILM, "dicom_16bit_narrow_window"), "dicom_16bit_narrow_window")
    )
    assert (narrow == 0).mean() > 0.04 and (narrow == 255).mean() > 0.04  # 5th-95th percentile
    plain = np.asarray(decoded(render(FILM, "dicom_12bit_no_window"), "dicom_12bit_no_window"))
    assert plain.max() == 255  # stretched from 12 bits, not left dark in a 16-bit range


def test_unknown_renderings_are_refused():
    with pytest.raises(ValueError, match="unknown rendering"):
        render(FILM, "sepia")


@pytest.mark.slow  # the shipped bundle on every sample film, eight renderings each
def test_shipped_model_gives_the_same_label_across_renderings_of_the_sample_films(tmp_path):
    films = sorted((SAMPLE_DIR / "images").glob("*.jpg"))
    report = rendering_agreement(bundle=DEFAULT_BUNDLE, films=films)
    assert report["films"] == len(films) >= 100
    assert set(report["per_rendering"]) == set(RENDERINGS)
    assert report["agreement"] >= 0.98, json.dumps(report["changed"][:20], indent=1)


def test_renderings_command_prints_and_writes_the_table(tmp_path, tiny_bundle):
    films = sorted((SAMPLE_DIR / "images").glob("*.jpg"))[:3]
    folder = tmp_path / "films"
    folder.mkdir()
    for film in films:
        (folder / film.name).write_bytes(film.read_bytes())
    out = io.StringIO()
    call_command(
        "renderings", bundle=tiny_bundle, images=folder, json=tmp_path / "r.json", stdout=out
    )
    text = out.getvalue()
    assert text.startswith("3 films, agreement ") and all(name in text for name in RENDERINGS)
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["changed"]) == round((1 - report["agreement"]) * 3 * len(RENDERINGS))
    with pytest.raises(CommandError, match="no PNG or JPEG"):
        call_command("renderings", images=tmp_path / "r.json")
