"""The inference task takes queued studies in batches; claims are exclusive; failures are
recorded on every study they touch."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from xrayweb.inference import runtime
from xrayweb.inference.models import Prediction
from xrayweb.inference.services.registry import model_version_register
from xrayweb.inference.tasks import predict_study
from xrayweb.studies.models import Study
from xrayweb.studies.services.ingest import study_create


@pytest.fixture
def queued(active_version, staff, sample_images):
    def make(n: int) -> list[Study]:
        return [
            study_create(
                user=staff,
                patient_id=f"P{i}",
                accession=f"A{i}",
                data=sample_images[i].read_bytes(),
            )
            for i in range(n)
        ]

    return make


def test_one_task_predicts_every_queued_study_in_one_batch(queued, settings):
    settings.INFERENCE_STUDIES_PER_TASK = 8
    studies = queued(3)
    predict_study.run(studies[1].pk)
    for study in studies:
        study.refresh_from_db()
        assert study.status == Study.Status.DONE
        prediction = study.predictions.get()
        assert prediction.batch_size == 3
        assert prediction.latency_ms >= prediction.duration_ms >= 0
    # The other studies' own tasks find their study done and write nothing twice.
    predict_study.run(studies[0].pk)
    predict_study.run(studies[2].pk)
    assert Prediction.objects.count() == 3


def test_a_task_takes_at_most_the_configured_number_of_studies(queued, settings):
    settings.INFERENCE_STUDIES_PER_TASK = 2
    studies = queued(4)
    predict_study.run(studies[3].pk)
    statuses = {s.pk: Study.objects.get(pk=s.pk).status for s in studies}
    # Its own study plus the oldest other queued one.
    assert statuses == {
        studies[0].pk: "done",
        studies[1].pk: "queued",
        studies[2].pk: "queued",
        studies[3].pk: "done",
    }


def test_a_study_running_elsewhere_is_left_alone_until_its_lease_expires(queued, settings):
    (study,) = queued(1)
    Study.objects.filter(pk=study.pk).update(status="running", status_changed_at=timezone.now())
    assert runtime.prediction_batch_run(study_id=study.pk, max_studies=1) == []
    expired = timezone.now() - timedelta(seconds=settings.INFERENCE_LEASE_SECONDS + 1)
    Study.objects.filter(pk=study.pk).update(status_changed_at=expired)
    (prediction,) = runtime.prediction_batch_run(study_id=study.pk, max_studies=1)
    assert prediction.study == study


def test_a_failing_batch_never_leaves_a_claimed_study_running(queued, settings, monkeypatch):
    settings.INFERENCE_STUDIES_PER_TASK = 8
    settings.INFERENCE_MAX_ATTEMPTS = 2
    studies = queued(3)

    def boom(self, images, cam=True, cam_classes=None):
        raise RuntimeError("injected fault")

    monkeypatch.setattr("classifier.predictor.Predictor.predict", boom)
    with pytest.raises(RuntimeError, match="injected fault"):
        runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=8)
    for study in studies:  # first attempt: every claimed study is queued again
        study.refresh_from_db()
        assert (study.status, study.attempts) == (Study.Status.QUEUED, 1)
        assert study.failure_reason == "retrying after: RuntimeError: injected fault"
    with pytest.raises(RuntimeError, match="injected fault"):
        runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=8)
    for study in studies:  # out of attempts: failed, with the reason
        study.refresh_from_db()
        assert study.status == Study.Status.FAILED
        assert study.failure_reason == "gave up after 2 attempts: RuntimeError: injected fault"
    assert Prediction.objects.count() == 0


def test_an_unreadable_image_fails_only_its_own_study(queued, settings):
    settings.INFERENCE_STUDIES_PER_TASK = 8
    studies = queued(3)
    studies[1].image.storage.delete(studies[1].image.name)
    predict_study.run(studies[0].pk)
    statuses = [Study.objects.get(pk=s.pk) for s in studies]
    assert [s.status for s in statuses] == ["done", "failed", "done"]
    assert statuses[1].failure_reason.startswith("cannot read the image")
    assert studies[0].predictions.get().batch_size == 2


def test_a_task_whose_study_was_taken_still_fills_a_whole_batch(queued, settings):
    studies = queued(4)
    Study.objects.filter(pk=studies[0].pk).update(status="done")
    predictions = runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=2)
    assert [p.study_id for p in predictions] == [studies[1].pk, studies[2].pk]
    assert Study.objects.get(pk=studies[3].pk).status == Study.Status.QUEUED


@pytest.fixture
def lungs_version(active_version, tiny_bundle_with_lungs):
    """The tiny bundle with a lung segmenter, active instead of the plain one."""
    return model_version_register(bundle_path=tiny_bundle_with_lungs, name="lungs", activate=True)


def _files(settings, folder: str) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / folder
    return sorted(root.iterdir()) if root.exists() else []


def test_a_batch_is_recorded_all_or_nothing_and_leaves_no_orphan_heatmaps_or_masks(
    queued, lungs_version, settings, monkeypatch
):
    studies = queued(3)

    def fail(*args, **kwargs):  # after the prediction rows were written, in the same commit
        assert Prediction.objects.count() == 3
        assert len(_files(settings, "masks")) == 3  # one lung mask per study, so far
        raise RuntimeError("database went away mid-batch")

    monkeypatch.setattr(Study.objects, "bulk_update", fail)
    with pytest.raises(RuntimeError, match="mid-batch"):
        runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=3)
    assert Prediction.objects.count() == 0  # rolled back with the failed update
    assert _files(settings, "heatmaps") == _files(settings, "masks") == []
    for study in studies:  # none left "running": all queued for another attempt
        study.refresh_from_db()
        assert (study.status, study.attempts) == (Study.Status.QUEUED, 1)
        assert "mid-batch" in study.failure_reason
    monkeypatch.undo()
    predictions = runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=3)
    assert len(predictions) == 3
    assert not Study.objects.exclude(status="done").exists()
    assert len(_files(settings, "masks")) == 3
    assert {p.model_version for p in predictions} == {lungs_version}


def test_a_redelivered_batch_overwrites_its_rows_and_adds_none(
    queued, lungs_version, settings, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    studies = queued(2)
    first = runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=2)
    Study.objects.filter(pk__in=[s.pk for s in studies]).update(status="queued")
    with django_capture_on_commit_callbacks(execute=True):
        second = runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=2)
    # The overwritten rows' heatmap and mask files are gone; the new ones are there.
    for old, new in zip(first, second, strict=True):
        assert old.lung_mask and new.lung_mask and old.lung_mask != new.lung_mask
        assert not any(default_storage.exists(path) for path in old.heatmaps.values())
        assert not default_storage.exists(old.lung_mask)
        assert all(default_storage.exists(path) for path in new.heatmaps.values())
        assert default_storage.exists(new.lung_mask)
    assert len(_files(settings, "masks")) == 2
    assert [p.pk for p in second] == [p.pk for p in first]  # the same rows, updated
    assert Prediction.objects.count() == 2
    for study, old, new in zip(studies, first, second, strict=True):
        study.refresh_from_db()
        assert study.current_prediction_id == new.pk and study.status == "done"
        assert new.heatmaps["fused"] != old.heatmaps["fused"]


# Poison films (issue 27). A worker that dies mid-batch (a film that crashes the model kills
# the process) is redelivered with the same task id, so its studies are "running" under that
# task's own claim.


def _crashed(studies, *, token: str, attempts: int) -> None:
    Study.objects.filter(pk__in=[s.pk for s in studies]).update(
        status="running", claimed_by=token, attempts=attempts, status_changed_at=timezone.now()
    )


def test_a_study_past_its_attempts_is_never_claimed_again_after_a_crash(queued, settings):
    settings.INFERENCE_MAX_ATTEMPTS = 3
    (study,) = queued(1)
    _crashed([study], token="task-1", attempts=3)
    assert runtime.prediction_batch_run(study_id=study.pk, max_studies=8, token="task-1") == []
    study.refresh_from_db()
    assert (study.status, study.attempts) == (Study.Status.FAILED, 3)
    assert study.failure_reason.startswith("the worker stopped while predicting this film")
    assert "3 times" in study.failure_reason and Prediction.objects.count() == 0


def test_a_study_past_its_lease_and_its_attempts_is_failed_not_claimed(queued, settings):
    settings.INFERENCE_MAX_ATTEMPTS = 3
    (study,) = queued(1)
    expired = timezone.now() - timedelta(seconds=settings.INFERENCE_LEASE_SECONDS + 1)
    Study.objects.filter(pk=study.pk).update(
        status="running", claimed_by="gone", attempts=3, status_changed_at=expired
    )
    assert runtime.prediction_batch_run(study_id=study.pk, max_studies=8, token="other") == []
    study.refresh_from_db()
    assert study.status == Study.Status.FAILED and Prediction.objects.count() == 0


def test_after_a_crash_the_batch_is_retried_one_study_at_a_time(queued, settings, monkeypatch):
    settings.INFERENCE_MAX_ATTEMPTS = 3
    settings.INFERENCE_STUDIES_PER_TASK = 8
    studies = queued(4)
    _crashed(studies[:3], token="task-1", attempts=1)
    enqueued = []
    monkeypatch.setattr(runtime, "study_enqueue", enqueued.append)
    (prediction,) = runtime.prediction_batch_run(
        study_id=studies[0].pk, max_studies=8, token="task-1"
    )
    assert prediction.study_id == studies[0].pk and prediction.batch_size == 1
    # Its batch-mates are queued again, each to be tried alone, and each has a task.
    assert sorted(enqueued) == sorted(s.pk for s in studies[1:3])
    for study in studies[1:3]:
        study.refresh_from_db()
        assert (study.status, study.isolated, study.attempts) == ("queued", True, 1)
    # A healthy queued study is still batched, but never with an isolated one.
    predictions = runtime.prediction_batch_run(study_id=studies[3].pk, max_studies=8)
    assert [p.study_id for p in predictions] == [studies[3].pk]
    for study in studies[1:3]:
        (prediction,) = runtime.prediction_batch_run(study_id=study.pk, max_studies=8)
        assert prediction.study_id == study.pk and prediction.batch_size == 1


def test_the_reconciler_isolates_the_studies_of_a_worker_that_died(queued, settings):
    from xrayweb.inference.services.claims import studies_reconcile

    studies = queued(2)
    expired = timezone.now() - timedelta(seconds=700)
    Study.objects.filter(pk__in=[s.pk for s in studies]).update(
        status="running", claimed_by="gone", attempts=1, status_changed_at=expired
    )
    studies_reconcile(queued_seconds=300, lease_seconds=600, max_attempts=3)
    assert set(Study.objects.values_list("status", "isolated")) == {("queued", True)}
    predictions = runtime.prediction_batch_run(study_id=studies[0].pk, max_studies=8)
    assert [p.study_id for p in predictions] == [studies[0].pk]
