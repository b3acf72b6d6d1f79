"""Tamper evidence: the audit trail and the readings are hash chains, `audit_verify` names the
first row changed, removed or inserted behind the application's back, and PostgreSQL refuses
UPDATE and DELETE outright. Runs on both databases (`make test` runs this file in its SQLite
pass as well)."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError

from xrayweb.audit.models import AppendOnlyError, AuditEvent, ChainHead
from xrayweb.audit.selectors import chains_verify
from xrayweb.audit.services import audit_record
from xrayweb.review.models import Review
from xrayweb.review.services import review_submit

POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def history(predicted, radiologist, admin_user):
    """Five audit events and two readings, written the application's way."""
    for n in range(3):
        audit_record(actor=admin_user, action=AuditEvent.Action.STUDY_VIEW, detail={"n": n})
    study = predicted({"normal": 0.9})
    review_submit(study=study, reviewer=radiologist, label="normal")
    review_submit(study=study, reviewer=radiologist, label="covid19", comment="amended")
    return list(AuditEvent.objects.order_by("seq")), list(Review.objects.order_by("seq"))


def raw(sql: str, params=()) -> None:
    """Write behind the application's back. On PostgreSQL the append-only triggers are
    switched off first, as a superuser could: the chain must catch it anyway."""
    with connection.cursor() as cursor:
        if POSTGRES:
            cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            if POSTGRES:
                cursor.execute("SET session_replication_role = origin")


def verify() -> str:
    """audit_verify's failure message (the test fails if it passes)."""
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")
    return str(failure.value)


def test_rows_written_by_the_application_form_intact_chains(history, capsys):
    events, reviews = history
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [r.seq for r in reviews] == [1, 2]
    assert all(len(row.chain_hash) == 64 for row in events + reviews)
    assert ChainHead.objects.get(name="review").hash == reviews[-1].chain_hash
    call_command("audit_verify")
    out = capsys.readouterr().out
    assert f"audit: {len(events)} rows, chain intact" in out
    assert "review: 2 rows, chain intact" in out


def test_bulk_inserts_join_the_chain(history, radiologist):
    AuditEvent.objects.bulk_create(
        [AuditEvent(action=AuditEvent.Action.STUDY_VIEW, detail={"bulk": n}) for n in range(4)]
    )
    assert all(problem is None for _, _, problem in chains_verify())
    assert AuditEvent.objects.order_by("-seq").first().seq == len(history[0]) + 4


@pytest.mark.skipif(not POSTGRES, reason="the triggers are PostgreSQL's; SQLite has the chain")
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'study.upload'",
        "DELETE FROM audit_auditevent",
        "UPDATE review_review SET label = 'normal'",
        "DELETE FROM review_review",
    ],
)
def test_postgresql_refuses_update_and_delete_on_history(history, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditEvent.objects.count() == len(history[0]) and Review.objects.count() == 2


def test_a_changed_audit_event_is_named(history):
    events, _ = history
    victim = events[1]
    raw("UPDATE audit_auditevent SET detail = %s WHERE id = %s", ['{"n": 99}', victim.pk])
    message = verify()
    assert f"audit_auditevent: row id={victim.pk} (seq {victim.seq})" in message
    assert "changed" in message


def test_a_changed_reading_is_named(history):
    _, reviews = history
    first = reviews[0]
    raw("UPDATE review_review SET label = 'covid19' WHERE id = %s", [first.pk])
    assert f"review_review: row id={first.pk} (seq 1)" in verify()


def test_a_removed_row_is_named(history):
    events, _ = history
    raw("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    message = verify()
    assert f"row id={events[3].pk} (seq 4)" in message and "(seq 3) were removed" in message


def test_rows_removed_from_the_end_are_noticed(history):
    _, reviews = history
    raw("DELETE FROM review_review WHERE id = %s", [reviews[-1].pk])
    assert "the last 1 were removed" in verify()


def test_emptying_a_table_and_its_head_is_noticed(history):
    raw("DELETE FROM review_review")
    raw("DELETE FROM audit_chainhead WHERE name = 'review'")
    assert "review_review: the chain's end: the chain's head is missing" in verify()


def test_a_row_inserted_behind_the_applications_back_is_named(history, admin_user):
    events, _ = history
    raw(
        "INSERT INTO audit_auditevent (action, detail, created_at, chain_hash) "
        "VALUES ('study.view', '{}', %s, '')",
        [events[0].created_at],
    )
    forged = AuditEvent.objects.get(seq__isnull=True)
    message = verify()
    assert f"row id={forged.pk}" in message and "inserted behind" in message


def test_a_forged_link_without_the_key_is_caught(history):
    """Someone with the database but not the key recomputes a changed row's chain: the
    hashes made with another key do not verify."""
    events, _ = history
    from xrayweb.audit.chain import GENESIS, row_content, row_hash

    victim = AuditEvent.objects.get(pk=events[0].pk)
    victim.detail = {"n": 1000}
    forged = row_hash(key="guess", previous=GENESIS, seq=1, content=row_content(victim))
    raw(
        "UPDATE audit_auditevent SET detail = %s, chain_hash = %s WHERE id = %s",
        ['{"n": 1000}', forged, victim.pk],
    )
    assert f"row id={victim.pk} (seq 1)" in verify()


def test_the_orm_cannot_change_history_either(history):
    events, reviews = history
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=events[0].pk).update(action="study.upload")
    with pytest.raises(AppendOnlyError):
        Review.objects.bulk_update(reviews, ["label"])
    with pytest.raises(AppendOnlyError):
        reviews[0].save()
    call_command("audit_verify")


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain():
    """Four threads, each its own database connection, append at once: the head's row lock
    (PostgreSQL) or the write lock taken at BEGIN (SQLite) keeps one chain."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def write(worker: int) -> None:
        try:
            for n in range(10):
                audit_record(
                    actor=None, action=AuditEvent.Action.STUDY_VIEW, detail={"w": worker, "n": n}
                )
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, 41))
    assert {chain: problem for chain, _, problem in chains_verify()}["audit"] is None


def test_renaming_a_user_does_not_re_attribute_history(history, radiologist, admin_user):
    """Issue 27: the chain covered only actor_id, and the reading SR printed the reader's
    current name. Rows carry the names as of the act, chained."""
    from xrayweb.dicomnet.sending import _reader_name

    events, reviews = history
    view = next(e for e in events if e.actor_id == admin_user.pk)
    assert view.actor_username == admin_user.username
    assert reviews[0].reviewer_username == radiologist.username
    old_name = radiologist.get_full_name() or radiologist.username
    radiologist.username, radiologist.first_name, radiologist.last_name = "mallory", "M", "X"
    radiologist.save()
    reading = Review.objects.get(pk=reviews[0].pk)
    assert reading.reviewer_username != "mallory" and _reader_name(reading) == old_name
    call_command("audit_verify")  # the names are part of each row's hash: intact
    raw("UPDATE audit_auditevent SET actor_username = 'mallory' WHERE id = %s", [view.pk])
    assert f"row id={view.pk} (seq {view.seq})" in verify()


def test_rows_chained_before_names_were_kept_still_verify(history, capsys):
    """Rows written before the name columns existed (empty there) keep their hashes."""
    from xrayweb.audit.chain import row_content

    system = audit_record(actor=None, action=AuditEvent.Action.STUDY_FAILED, detail={"n": 1})
    assert "actor_username" not in row_content(system)
    call_command("audit_verify")
    assert "chain intact" in capsys.readouterr().out


def test_the_chains_are_verified_on_a_schedule_and_a_break_raises_the_alarm(
    history, client, admin_user, settings, worker_answering
):
    """Issue 27: audit_verify ran only by hand, and nothing showed a broken chain."""
    from pathlib import Path

    from xrayweb.audit.tasks import verify_chains

    assert settings.CELERY_BEAT_SCHEDULE["verify-audit-chains"]["task"] == verify_chains.name
    makefile = (Path(settings.BASE_DIR) / "Makefile").read_text()
    assert "worker -Q inference,default --pool solo --loglevel INFO -B" in makefile  # make run
    client.force_login(admin_user)
    assert verify_chains.run() == {"ok": True, "problem": ""}
    health = client.get("/healthz").json()
    assert health["audit"]["ok"] is True and health["ok"] is True
    events, _ = history
    raw("UPDATE audit_auditevent SET detail = %s WHERE id = %s", ['{"n": 99}', events[1].pk])
    result = verify_chains.run()
    assert result["ok"] is False and f"row id={events[1].pk}" in result["problem"]
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["audit"]["ok"] is False
    page = client.get("/audit/log/").content.decode()
    assert "The audit trail was tampered with" in page and f"row id={events[1].pk}" in page
    client.logout()
    assert "audit" not in client.get("/healthz").json()  # anonymous callers are not told
