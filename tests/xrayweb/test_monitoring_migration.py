"""A database from before the drift monitor: each stored prediction's feature distance moves
into its column, and each registered version whose own bundle is on disk gets its drift
reference."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from classifier import DEFAULT_BUNDLE, bundle_sha256, read_metadata

STUDIES = ("studies", "0009_burned_in_check")
BEFORE = [("inference", "0007_prediction_sets"), STUDIES]
AFTER = [("inference", "0009_modelversion_drift_reference"), STUDIES]


@pytest.mark.django_db(transaction=True)
def test_distances_and_references_are_filled_in():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("auth", "User").objects.create(username="staff")
    Version = old.get_model("inference", "ModelVersion")
    shipped = Version.objects.create(
        name="shipped",
        bundle_path=str(DEFAULT_BUNDLE),
        sha256=bundle_sha256(DEFAULT_BUNDLE),
        classes=[],
        members=[],
    )
    # A version whose file was since replaced by another bundle (an upgrade in place).
    Version.objects.create(name="replaced", bundle_path=str(DEFAULT_BUNDLE), sha256="c" * 64,
                           classes=[], members=[])  # fmt: skip
    Version.objects.create(name="gone", bundle_path="/nowhere.safetensors", sha256="b" * 64,
                           classes=[], members=[])  # fmt: skip
    Study = old.get_model("studies", "Study")
    Prediction = old.get_model("inference", "Prediction")
    for i, scores in enumerate([{"feature_distance": 1234.5}, {}, {"feature_distance": None}]):
        study = Study.objects.create(
            uploaded_by=user,
            patient_id=f"P{i}",
            accession=f"A{i}",
            image="x.png",
            image_format="PNG",
            image_width=8,
            image_height=8,
            image_sha256=f"{i:064x}",
        )
        Prediction.objects.create(
            study=study,
            model_version=shipped,
            bundle_sha256="a" * 64,
            label="normal",
            probabilities={"normal": 1.0},
            member_probabilities={},
            assessment={"assessable": True, "scores": scores},
            duration_ms=1,
        )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    distances = new.get_model("inference", "Prediction").objects.order_by("study__patient_id")
    assert list(distances.values_list("feature_distance", flat=True)) == [1234.5, None, None]
    versions = new.get_model("inference", "ModelVersion").objects
    assert (
        versions.get(name="shipped").drift_reference
        == (read_metadata(DEFAULT_BUNDLE).gate["reference"])
    )
    assert versions.get(name="gone").drift_reference == {}
    assert versions.get(name="replaced").drift_reference == {}

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
