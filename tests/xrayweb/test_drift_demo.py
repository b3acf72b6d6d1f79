"""The drift monitor on real films (issue 29, at small size): the shipped bundle reads a
stream of films from its own hospitals, then the same films rendered at an eighth of their
resolution; the monitor checks after every film, through the database like Celery beat does.
Its alarm must stay quiet on the first stream and fire within one window after the shift.

The in-distribution stream: tests/data/drift_sample (100 films of the bundle's test split,
never trained on) and the 30 covid19 films of tests/data/cxr_sample, so that the case mix is
the validation films' (no redistributable covid19 film is in the test split, so these were
mostly training films: their distances are a little smaller than unseen films' would be).
tests/bench/drift.py measures the same at full size over 100 random orders."""

import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from PIL import Image

from classifier import DEFAULT_BUNDLE, load_bundle
from tests.bench.drift import blurred
from tests.conftest import SAMPLE_MANIFEST
from tests.factories import PredictionFactory, StudyFactory
from training.data.manifests import read_manifest
from xrayweb.audit.models import AuditEvent
from xrayweb.inference.services.registry import model_version_register
from xrayweb.review.models import DriftAlarm, DriftSignal
from xrayweb.review.monitoring import monitor_check, monitor_report
from xrayweb.studies.models import ReviewState

DRIFT_MANIFEST = Path(__file__).resolve().parents[1] / "data/drift_sample/manifest.csv"


def _read(predictor, images: list[Image.Image], truths: list[str]) -> list[dict]:
    rows = []
    for start in range(0, len(images), 16):
        for r in predictor.predict(images[start : start + 16], cam=False):
            rows.append(
                {
                    "probabilities": r.probabilities,
                    "label": r.label,
                    "distance": r.assessment.scores.get("feature_distance"),
                    "assessable": r.assessment.assessable,
                }
            )
    return [row | {"truth": t} for row, t in zip(rows, truths, strict=True)]


@pytest.fixture(scope="module")
def streams():
    predictor = load_bundle(DEFAULT_BUNDLE, device="cpu")
    films = read_manifest(DRIFT_MANIFEST)
    covid = [r for r in read_manifest(SAMPLE_MANIFEST) if r.label == "covid19"]
    images = [Image.open(r.path).convert("L") for r in films]
    calm = _read(predictor, images, [r.label for r in films]) + _read(
        predictor, [Image.open(r.path).convert("L") for r in covid], [r.label for r in covid]
    )
    shifted = _read(predictor, [blurred(i) for i in images], [r.label for r in films])
    rng = random.Random(0)
    return rng.sample(calm, len(calm)), rng.sample(shifted, len(shifted))


def test_the_alarm_stays_quiet_on_films_like_the_training_films_and_fires_after_a_shift(
    streams, db, staff
):
    calm, shifted = streams
    version = model_version_register(bundle_path=DEFAULT_BUNDLE, name="shipped")
    assert version.drift_reference, "the shipped bundle carries the monitor's reference"
    classes = set(version.classes)
    start = timezone.now() - timedelta(days=30)
    fired_at, first = None, None
    for i, film in enumerate(calm + shifted, start=1):
        study = StudyFactory(uploaded_by=staff, site="north")
        prediction = PredictionFactory(
            study=study,
            model_version=version,
            probabilities=film["probabilities"],
            feature_distance=film["distance"],
            assessable=film["assessable"],
        )
        fields = {"created_at": start + timedelta(hours=i), "current_prediction": prediction}
        if film["assessable"] and film["truth"] in classes:
            fields |= {"review_state": ReviewState.FINAL, "final_label": film["truth"]}
        type(study).objects.filter(pk=study.pk).update(**fields)
        if i < settings.MONITOR_MIN_FILMS:
            continue
        if monitor_check()["opened"] and fired_at is None:
            fired_at, first = i, list(DriftAlarm.objects.values_list("signal", flat=True))
            break
    assert fired_at is not None, "no alarm after the shift"
    delay = fired_at - len(calm)
    print(f"first alarm {delay} films after the shift ({first}), none in {len(calm)} before")
    print(monitor_report()["sentences"][0])
    assert delay > 0, f"a false alarm {len(calm) - fired_at} films before the shift: {first}"
    # Within one window of the shift (the bench's full-size median is 38 films, p90 54).
    assert delay <= settings.MONITOR_WINDOW_FILMS
    assert DriftSignal.DISTANCE in first or DriftSignal.CONFIDENCE in first
    event = AuditEvent.objects.get(action=AuditEvent.Action.MONITOR_ALARM)
    assert event.detail["site"] == "north" and event.detail["model_version"] == "shipped"
    assert monitor_report()["sentences"][0].startswith("Site north (model shipped): since ")
