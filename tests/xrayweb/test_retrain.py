import pytest
from django.core.management import CommandError, call_command

from tests.conftest import SAMPLE_MANIFEST
from xrayweb.audit.models import AuditEvent
from xrayweb.inference import runtime
from xrayweb.inference.models import ModelVersion, PatientAssignment
from xrayweb.inference.retraining import promotion_gate
from xrayweb.review.services import review_submit
from xrayweb.studies.services.ingest import study_create

FAST = [
    "--arch",
    "mobilenet_v3_small",
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
PERFECT = {
    "n": 10,
    "accuracy": 1.0,
    "macro_auc": 1.0,
    "ece": 0.0,
    "per_class": {"covid19": {"sensitivity": 1.0}},
}


def test_gate_promotes_only_when_auc_and_covid_sensitivity_do_not_get_worse():
    active = {"macro_auc": 0.90, "covid19_sensitivity": 0.90}
    assert promotion_gate(candidate=dict(active), active=active)[0]
    assert promotion_gate(
        candidate={"macro_auc": 0.95, "covid19_sensitivity": 0.95}, active=active
    )[0]
    passed, reason = promotion_gate(
        candidate={"macro_auc": 0.95, "covid19_sensitivity": 0.80}, active=active
    )
    assert not passed and "covid19_sensitivity 0.800 < 0.900" in reason
    assert promotion_gate(candidate={"macro_auc": 0.5, "covid19_sensitivity": 0.1}, active=None)[0]


@pytest.fixture
def reviewed(active_version, staff, radiologist, sample_images):
    study = study_create(
        user=staff, patient_id="P1", accession="A1", data=sample_images[0].read_bytes()
    )
    runtime.prediction_batch_run(study_id=study.pk, max_studies=1)
    review_submit(study=study, reviewer=radiologist, label="normal")
    return study


def test_retrain_keeps_a_locked_set_records_provenance_and_gates_promotion(
    reviewed, active_version, admin_user, monkeypatch, capsys
):
    # Make the active version look perfect on the locked set, so the gate must refuse.
    monkeypatch.setattr(
        "xrayweb.inference.retraining.evaluate_bundle",
        lambda path, records, **options: {**PERFECT, "n": len(records)},
    )
    call_command(
        "retrain",
        "--manifest",
        str(SAMPLE_MANIFEST),
        "--activate",
        "--user",
        admin_user.username,
        *FAST,
    )
    candidate = ModelVersion.objects.exclude(pk=active_version.pk).get()
    active_version.refresh_from_db()
    assert active_version.is_active and not candidate.is_active
    assert candidate.gate["passed"] is False and "worse than the active" in candidate.gate["reason"]
    assert candidate.created_by == admin_user
    locked = set(
        PatientAssignment.objects.filter(split="locked").values_list("patient_key", flat=True)
    )
    assert candidate.locked_metrics["n"] > 0 and candidate.gate["locked_patients"] == len(
        set(locked)
    )
    sources = candidate.training["data_sources"]
    assert sources[0]["images"] == 119 and len(sources[0]["sha256"]) == 64
    assert sources[1]["reviews"] == 1 and len(sources[1]["reviews_sha256"]) == 64
    assert "P1" not in str(candidate.training)  # patient ids stay in the database
    assert "Gate: worse than the active version" in capsys.readouterr().out

    # A second run keeps every assignment; --force promotes despite the gate.
    before = dict(PatientAssignment.objects.values_list("patient_key", "split"))
    call_command(
        "retrain",
        "--manifest",
        str(SAMPLE_MANIFEST),
        "--activate",
        "--force",
        "--name",
        "forced",
        "--user",
        admin_user.username,
        *FAST,
    )
    assert dict(PatientAssignment.objects.values_list("patient_key", "split")) == before
    forced = ModelVersion.objects.get(name="forced")
    assert forced.is_active and forced.gate["forced"] is True
    assert ModelVersion.objects.count() == 3  # nothing is deleted

    # The worker uses the promoted version for the next prediction.
    study = reviewed
    again = study_create(
        user=study.uploaded_by, patient_id="P2", accession="A2", data=study.image.read()
    )
    (prediction,) = runtime.prediction_batch_run(study_id=again.pk, max_studies=1)
    assert prediction.model_version == forced


def test_retrain_without_an_active_version_promotes_with_activate(db, admin_user):
    with pytest.raises(CommandError, match="Name the admin"):
        call_command("retrain", "--manifest", str(SAMPLE_MANIFEST), "--no-reviews", "--activate")
    args = ["--manifest", str(SAMPLE_MANIFEST), "--no-reviews", "--activate"]
    call_command("retrain", *args, "--user", admin_user.username, *FAST)
    version = ModelVersion.objects.get()
    assert version.is_active and version.gate["passed"] is True
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_ACTIVATE)
    assert event.actor == admin_user and event.detail["via"] == "retrain"
    assert event.detail["model_version"] == version.name


def test_retrain_carries_the_active_versions_lung_segmenter(db, tiny_bundle_with_lungs):
    from classifier import read_metadata
    from xrayweb.inference.services.registry import model_version_register

    active = model_version_register(bundle_path=tiny_bundle_with_lungs, name="lungs", activate=True)
    call_command("retrain", "--manifest", str(SAMPLE_MANIFEST), "--no-reviews", *FAST)
    candidate = ModelVersion.objects.exclude(pk=active.pk).get()
    assert (
        read_metadata(candidate.bundle_path).segmenter
        == read_metadata(tiny_bundle_with_lungs).segmenter
    )


def test_retrain_refuses_rows_of_the_external_hospital(db):
    from tests.conftest import LUNGS_MANIFEST

    with pytest.raises(CommandError, match="never trains the classifier"):
        call_command("retrain", "--manifest", str(LUNGS_MANIFEST), "--no-reviews", *FAST)
    assert not ModelVersion.objects.exists() and not PatientAssignment.objects.exists()


def test_models_lists_versions_and_rolls_back(
    active_version, tmp_path, tiny_bundle, capsys, admin_user, radiologist
):
    from xrayweb.inference.services.registry import model_version_register

    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(tiny_bundle.read_bytes() + b" ")
    newer = model_version_register(bundle_path=copy, name="newer", activate=True)
    call_command("models")
    listing = capsys.readouterr().out
    assert "* newer" in listing and "tiny" in listing
    with pytest.raises(CommandError, match="Name the admin"):
        call_command("models", "--activate", "tiny")
    with pytest.raises(CommandError, match="is not an admin"):
        call_command("models", "--activate", "tiny", "--user", radiologist.username)
    call_command("models", "--activate", "tiny", "--user", admin_user.username)
    event = AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_ACTIVATE).first()
    assert event.actor == admin_user
    assert event.detail == {
        "model_version": "tiny",
        "sha256": active_version.sha256,
        "previous": "newer",
        "via": "command",
    }
    active_version.refresh_from_db()
    newer.refresh_from_db()
    assert active_version.is_active and not newer.is_active
    with pytest.raises(CommandError, match="no model version named"):
        call_command("models", "--activate", "nope", "--user", admin_user.username)


def test_queue_sends_the_job_to_the_training_queue(db, mocker):
    delay = mocker.patch("xrayweb.inference.tasks.retrain_model.delay")
    delay.return_value.id = "task-1"
    call_command("retrain", "--manifest", str(SAMPLE_MANIFEST), "--queue", *FAST)
    (job,), _ = delay.call_args
    assert job["config"]["archs"] == ["mobilenet_v3_small"] and job["manifests"]
    from xrayweb.celery import app

    assert app.amqp.router.route({}, "xrayweb.inference.tasks.retrain_model")["queue"].name == (
        "training"
    )


def test_retrain_without_any_data_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No training data"):
        call_command("retrain", "--no-reviews", *FAST)


@pytest.mark.parametrize("role", ["staff", "radiologist"])
def test_only_admins_may_retrain(make_user, role):
    user = make_user(role)
    with pytest.raises(CommandError, match="only admins may retrain"):
        call_command("retrain", "--user", user.username, "--no-reviews")


def test_evaluate_command_uses_the_active_version(active_version, tmp_path, capsys):
    out = tmp_path / "report.json"
    call_command("evaluate", "--manifest", str(SAMPLE_MANIFEST), "--json", str(out))
    assert active_version.name in capsys.readouterr().out
    import json

    assert json.loads(out.read_text())["n"] == 119


def test_retrain_sees_films_as_the_active_version_does(db, tiny_bundle_with_lungs, tmp_path):
    from dataclasses import replace

    from classifier import read_metadata
    from classifier.bundle import load_bundle_members, load_segmenter, save_bundle
    from xrayweb.inference.services.registry import model_version_register

    meta, members = load_bundle_members(tiny_bundle_with_lungs)
    recipe = {"intensity": "equalize", "crop": "content", "render": True, "ema": 0.9}
    recipe |= {"cam_lungs": 1.0, "adversary": 0.2}
    seeing = replace(meta, segmenter={}, training={"config": recipe}, intensity="equalize")
    path = tmp_path / "seeing.safetensors"
    save_bundle(path, members, seeing, segmenter=load_segmenter(tiny_bundle_with_lungs))
    active = model_version_register(bundle_path=path, name="seeing", activate=True)
    call_command("retrain", "--manifest", str(SAMPLE_MANIFEST), "--no-reviews", *FAST)
    candidate = read_metadata(ModelVersion.objects.exclude(pk=active.pk).get().bundle_path)
    assert (candidate.intensity, candidate.crop) == ("equalize", "content")
    assert {k: candidate.training["config"][k] for k in recipe} == recipe
    assert candidate.segmenter == read_metadata(path).segmenter


def test_retrain_carries_the_active_versions_gate_refitted_with_the_radiologists_overrules(
    predicted, radiologist, tiny_bundle_with_gate
):
    import torch

    from classifier.bundle import load_gate
    from xrayweb.inference.services.registry import model_version_register

    refused = {"assessable": False, "reasons": ["a near-constant image"], "scores": {}}
    after_all = predicted({"normal": 0.9}, gate=refused)
    review_submit(study=after_all, reviewer=radiologist, label="normal", assessability="assessable")
    blurred = predicted({"normal": 0.9})
    review_submit(study=blurred, reviewer=radiologist, assessability="not_diagnostic")
    active = model_version_register(bundle_path=tiny_bundle_with_gate, name="gated", activate=True)
    call_command("retrain", "--manifest", str(SAMPLE_MANIFEST), *FAST)
    candidate = ModelVersion.objects.exclude(pk=active.pk).exclude(name="tiny").get()
    before, after = load_gate(tiny_bundle_with_gate), load_gate(candidate.bundle_path)
    for key, value in before.net.state_dict().items():
        assert torch.equal(after.net.state_dict()[key], value), key
    refit = after.spec.training["refit"]
    assert refit["assessable_after_all"] == 1 and refit["not_diagnostic"]["n"] == 1
    assert candidate.training["config"]["gate"] == str(tiny_bundle_with_gate.resolve())
