import pytest
from django.core.management import CommandError, call_command

from tests.conftest import SAMPLE_MANIFEST
from xrayweb.inference import runtime
from xrayweb.inference.models import ModelVersion
from xrayweb.review.services import review_submit
from xrayweb.studies.services import study_create

FAST = [
    "--arch",
    "mobilenet_v3_small,vgg11_bn",
    "--epochs",
    "1",
    "--input-size",
    "32",
    "--batch-size",
    "16",
    "--device",
    "cpu",
    "--verbosity",
    "0",
]


def test_retrain_from_a_manifest_and_reviews_registers_and_activates_a_new_version(
    active_version, staff, radiologist, admin_user, sample_images, capsys
):
    study = study_create(
        user=staff, patient_id="P1", accession="A1", data=sample_images[0].read_bytes()
    )
    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)[0]
    review_submit(study=study, reviewer=radiologist, label="normal")

    call_command(
        "retrain",
        "--manifest",
        str(SAMPLE_MANIFEST),
        "--activate",
        "--user",
        admin_user.username,
        *FAST,
    )

    new = ModelVersion.objects.get(is_active=True)
    assert new != active_version
    assert ModelVersion.objects.filter(pk=active_version.pk).exists()  # old versions stay
    assert new.created_by == admin_user
    assert new.classes == active_version.classes
    assert {"database_reviews": 1} in new.training["data_sources"]
    assert (
        new.training["splits"]["train"]["images"]
        + new.training["splits"]["val"]["images"]
        + new.training["splits"]["test"]["images"]
        == 120
    )
    assert new.metrics["ensemble"]["n"] > 0
    assert "Registered" in capsys.readouterr().out

    # The worker uses the new version for the next prediction.
    again = study_create(
        user=staff, patient_id="P2", accession="A2", data=sample_images[1].read_bytes()
    )
    assert runtime.prediction_batch_run(study_id=again.pk, max_studies=1)[0].model_version == new


def test_retrain_without_any_data_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No training data"):
        call_command("retrain", "--no-reviews", *FAST)
