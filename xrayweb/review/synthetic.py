"""Synthetic studies for benchmarks and performance tests: realistic row counts and value
spreads, no image files (the pages under test never open them)."""

import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.review.models import Review
from xrayweb.studies.models import ReviewState, Study

SITES = ["north", "south", "children", "emergency"]
VIEWS = ["PA", "AP", "AP supine"]


def _probabilities(rng: random.Random, classes: list[str]) -> dict[str, float]:
    raw = [rng.random() ** 3 for _ in classes]
    total = sum(raw)
    return {c: v / total for c, v in zip(classes, raw, strict=True)}


@transaction.atomic
def studies_generate(
    *, n: int, uploader, readers: list, version: ModelVersion, seed: int = 0, days: int = 180
) -> int:
    """``n`` done studies with one prediction each; about 60% carry a final read (a quarter of
    those disagreeing with the model), spread over ``days`` days, sites and views."""
    rng = random.Random(seed)
    classes = list(version.classes)
    now = timezone.now()
    studies = Study.objects.bulk_create(
        [
            Study(
                patient_id=f"SYN-{seed}-{i // 2:06d}",
                accession=f"ACC-{seed}-{i:07d}",
                image=f"studies/synthetic-{i}.png",
                image_format="PNG",
                image_width=1024,
                image_height=1024,
                image_sha256=f"{i:064x}",
                uploaded_by=uploader,
                status=Study.Status.DONE,
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
        label = max(probs, key=probs.get)
        members = {"mobilenet": _probabilities(rng, classes), "vgg": probs}
        agree = {max(p, key=p.get) for p in members.values()} == {label}
        predictions.append(
            Prediction(
                study=study,
                model_version=version,
                bundle_sha256=version.sha256,
                label=label,
                probabilities=probs,
                member_probabilities=members,
                confidence=probs[label],
                members_agree=agree,
                heatmaps={m: f"heatmaps/synthetic-{m}.png" for m in ("fused", *members)},
                cam_layers={"mobilenet": "features.18", "vgg": "features.27"},
                duration_ms=40,
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
                Review(
                    study=study,
                    reviewer=rng.choice(readers),
                    label=label,
                    prediction=prediction,
                    agrees_with_model=label == prediction.label,
                )
            )
    Study.objects.bulk_update(
        studies,
        ["current_prediction", "created_at", "review_state", "final_label", "finalized_at"],
        batch_size=1000,
    )
    Review.objects.bulk_create(reviews, batch_size=1000)
    return n
