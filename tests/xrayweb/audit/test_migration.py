"""A database from before the audit app keeps its history: the audit events move tables with
their rows, and existing rows are linked into chains that verify."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [
    ("review", "0005_assessment"),
    ("inference", "0006_assessment"),
    ("studies", "0006_assessment"),
]


@pytest.mark.django_db(transaction=True)
def test_existing_rows_move_and_are_chained():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("auth", "User").objects.create(username="reader")
    study = old.get_model("studies", "Study").objects.create(
        uploaded_by=user,
        patient_id="P1",
        accession="A1",
        image="x.png",
        image_format="PNG",
        image_width=8,
        image_height=8,
        image_sha256="0" * 64,
    )
    Event = old.get_model("review", "AuditEvent")
    for action in ("study.upload", "study.view"):
        Event.objects.create(actor=user, action=action, study=study, detail={"k": 1})
    old.get_model("review", "Review").objects.create(
        study=study, reviewer=user, label="normal", created_at=timezone.now()
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from xrayweb.audit.models import AuditEvent
    from xrayweb.review.models import Review

    assert list(AuditEvent.objects.order_by("seq").values_list("action", "seq")) == [
        ("study.upload", 1),
        ("study.view", 2),
    ]
    assert Review.objects.get().seq == 1
    assert "review_auditevent" not in connection.introspection.table_names()
    call_command("audit_verify")  # raises if either chain does not verify
