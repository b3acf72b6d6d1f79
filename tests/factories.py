"""Test data built with factory_boy: users, model versions, studies, predictions and readings,
and ``studies_generate`` for the many-study tests and the web benchmark (tests/bench/web.py):
realistic row counts and value spreads in bulk inserts, no image files (the pages under test
never open them)."""

import random
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from classifier import DEFAULT_CLASSES
from xrayweb.inference.conformal import set_size
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.review.models import Review
from xrayweb.studies.models import ReviewState, Study

CLASSES = list(DEFAULT_CLASSES)
SITES = ["north", "south", "children", "emergency"]
VIEWS = ["PA", "AP", "AP supine"]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A registry row with no bundle behind it: enough for pages, never for a worker."""

    class Meta:
        model = ModelVersion

    name = factory.Sequence(lambda n: f"version-{n}")
    bundle_path = "-"
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    classes = factory.LazyFunction(lambda: list(CLASSES))
    members = factory.LazyFunction(list)


class StudyFactory(factory.django.DjangoModelFactory):
    """A study whose inference is done, with an image name but no file."""

    class Meta:
        model = Study

    patient_id = factory.Sequence(lambda n: f"SYN-{n // 2:06d}")
    accession = factory.Sequence(lambda n: f"ACC-{n:07d}")
    image = factory.Sequence(lambda n: f"studies/synthetic-{n}.png")
    image_format = "PNG"
    image_width = 1024
    image_height = 1024
    image_sha256 = factory.Sequence(lambda n: f"{n:064x}")
    uploaded_by = factory.SubFactory(UserFactory)
    status = Study.Status.DONE


class PredictionFactory(factory.django.DjangoModelFactory):
    """A two-member prediction; its label is the most probable class."""

    class Meta:
        model = Prediction

    study = factory.SubFactory(StudyFactory)
    model_version = factory.SubFactory(ModelVersionFactory)
    bundle_sha256 = factory.SelfAttribute("model_version.sha256")
    probabilities = factory.LazyAttribute(
        lambda p: {c: 1.0 / len(p.model_version.classes) for c in p.model_version.classes}
    )
    label = factory.LazyAttribute(lambda p: max(p.probabilities, key=p.probabilities.get))
    confidence = factory.LazyAttribute(lambda p: p.probabilities[p.label])
    member_probabilities = factory.LazyAttribute(
        lambda p: {"mobilenet": p.probabilities, "vgg": p.probabilities}
    )
    members_agree = True
    assessable = None  # as before the gate; the set size reads it
    # No conformal sets unless given, like a bundle without conformal calibration.
    prediction_sets = factory.LazyFunction(dict)
    set_size = factory.LazyAttribute(
        lambda p: set_size(prediction_sets=p.prediction_sets, assessable=p.assessable)
    )
    heatmaps = factory.LazyAttribute(
        lambda p: {m: f"heatmaps/synthetic-{m}.png" for m in ("fused", *p.member_probabilities)}
    )
    cam_layers = factory.LazyFunction(lambda: {"mobilenet": "features.18", "vgg": "features.27"})
    duration_ms = 40


class ReviewFactory(factory.django.DjangoModelFactory):
    """A first read of the study's prediction (the study's state is the caller's to set)."""

    class Meta:
        model = Review

    prediction = factory.SubFactory(PredictionFactory)
    study = factory.SelfAttribute("prediction.study")
    reviewer = factory.SubFactory(UserFactory)
    label = factory.SelfAttribute("prediction.label")
    agrees_with_model = factory.LazyAttribute(lambda r: r.label == r.prediction.label)


def _probabilities(rng: random.Random, classes: list[str]) -> dict[str, float]:
    raw = [rng.random() ** 3 for _ in classes]
    total = sum(raw)
    return {c: v / total for c, v in zip(classes, raw, strict=True)}


def prediction_sets_for(probabilities: dict[str, float]) -> dict[str, list[str]]:
    """Plausible conformal sets: the most probable classes until their mass reaches the level
    (not the classifier's LAC thresholds, but sets of every size, most probable first)."""
    ranked = sorted(probabilities, key=probabilities.get, reverse=True)
    sets = {}
    for level in (0.90, 0.95):
        kept, mass = [], 0.0
        for name in ranked:
            kept.append(name)
            mass += probabilities[name]
            if mass >= level:
                break
        sets[f"{level:.2f}"] = kept
    return sets


@transaction.atomic
def studies_generate(
    *, n: int, uploader, readers: list, version: ModelVersion, seed: int = 0, days: int = 180
) -> int:
    """``n`` done studies with one prediction each; about 60% carry a final read (a quarter of
    those disagreeing with the model), spread over ``days`` days, sites and views. Built with
    the factories, written with bulk inserts (readings too: their hash chain links the batch)."""
    rng = random.Random(seed)
    distances = random.Random(seed + 1)  # its own draws: rng's sequence is as it was
    classes = list(version.classes)
    now = timezone.now()
    studies = Study.objects.bulk_create(
        [
            StudyFactory.build(
                patient_id=f"SYN-{seed}-{i // 2:06d}",
                accession=f"ACC-{seed}-{i:07d}",
                image=f"studies/synthetic-{i}.png",
                image_sha256=f"{i:064x}",
                uploaded_by=uploader,
                site=rng.choice(SITES),
                view=rng.choice(VIEWS),
            )
            for i in range(n)
        ],
        batch_size=1000,
    )
    predictions = []
    for study in studies:
        probs = _probabilities(rng, classes)
        members = {"mobilenet": _probabilities(rng, classes), "vgg": probs}
        label = max(probs, key=probs.get)
        predictions.append(
            PredictionFactory.build(
                study=study,
                model_version=version,
                probabilities=probs,
                member_probabilities=members,
                prediction_sets=prediction_sets_for(probs),
                members_agree={max(p, key=p.get) for p in members.values()} == {label},
                # The gate's feature distance: about the shipped bundle's validation films'.
                feature_distance=distances.lognormvariate(7.3, 0.35),
            )
        )
    predictions = Prediction.objects.bulk_create(predictions, batch_size=1000)
    reviews = []
    for study, prediction in zip(studies, predictions, strict=True):
        study.current_prediction = prediction
        study.created_at = now - timedelta(days=rng.random() * days)
        if rng.random() < 0.6:
            label = prediction.label if rng.random() < 0.75 else rng.choice(classes)
            study.review_state = ReviewState.FINAL
            study.final_label = label
            study.finalized_at = study.created_at + timedelta(hours=rng.random() * 48)
            reviews.append(
                ReviewFactory.build(
                    study=study, prediction=prediction, reviewer=rng.choice(readers), label=label
                )
            )
    Study.objects.bulk_update(
        studies,
        ["current_prediction", "created_at", "review_state", "final_label", "finalized_at"],
        batch_size=1000,
    )
    Review.objects.bulk_create(reviews, batch_size=1000)
    return n


def api_token_with_key(user, key: str):
    """A stored API token whose key the test chooses (knox keeps only its digest)."""
    from knox.crypto import hash_token
    from knox.models import AuthToken
    from knox.settings import CONSTANTS

    token = AuthToken(
        user=user, digest=hash_token(key), token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH], expiry=None
    )
    token.save()  # not the manager's create(), which makes a key of its own
    return token
