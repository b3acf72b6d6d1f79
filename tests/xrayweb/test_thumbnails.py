"""The worklist's thumbnails: made once at upload, backfilled by a command, never per
request."""

import io

import pytest
from django.core.management import call_command
from PIL import Image

from tests.xrayweb.conftest import png_bytes
from tests.xrayweb.dicomnet import films
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create

pytestmark = pytest.mark.django_db


def _size(field) -> tuple[int, int]:
    with field.open("rb") as f:
        return Image.open(io.BytesIO(f.read())).size


@pytest.mark.parametrize("kind", ["png", "dicom"])
def test_an_upload_stores_a_small_thumbnail(staff, kind):
    data = png_bytes(200, 120) if kind == "png" else films.to_bytes(films.film(width=96))
    study = study_create(user=staff, patient_id="P", accession="A", data=data)
    assert study.thumbnail.name.endswith("-thumb.png")
    assert max(_size(study.thumbnail)) == 64


def test_the_command_backfills_studies_without_one(staff, capsys):
    study = study_create(user=staff, patient_id="P", accession="A", data=png_bytes())
    Study.objects.filter(pk=study.pk).update(thumbnail="")
    call_command("thumbnails")
    assert "1 thumbnails made" in capsys.readouterr().out
    study.refresh_from_db()
    assert max(_size(study.thumbnail)) == 64
    call_command("thumbnails")
    assert "0 thumbnails made" in capsys.readouterr().out


def test_the_worklist_shows_thumbnails_with_a_constant_number_of_queries(
    client, staff, django_assert_max_num_queries
):
    for i in range(3):
        study_create(user=staff, patient_id=f"P{i}", accession="A", data=png_bytes(seed=i))
    client.force_login(staff)
    with django_assert_max_num_queries(30) as few:
        page = client.get("/worklist/").content.decode()
    assert page.count('-thumb.png"') == 3
    for i in range(3, 9):
        study_create(user=staff, patient_id=f"P{i}", accession="A", data=png_bytes(seed=i))
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get("/worklist/").content.decode()
    assert page.count('-thumb.png"') == 9
