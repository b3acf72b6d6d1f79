"""Which worker predicts which study: claims with a lease, release on failure, recovery
of a crashed worker's batch one study at a time, and the reconciler's sweep."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record_studies
from xrayweb.studies.models import Study

CRASHED = "the worker stopped while predicting this film"


@transaction.atomic
def studies_recover_crashed(
    *, study_id: int, token: str, lease_seconds: int, max_attempts: int
) -> list[int]:
    """Studies whose last try stopped without finishing: this study "running" past the lease
    (its worker died), or any study still "running" under this task's own claim (the task was
    redelivered with the same id after its worker died, or retried after the database dropped
    before the release).

    Each one with attempts left goes back to "queued", isolated: from now on it is predicted
    alone, so a film that kills the worker cannot take its batch-mates down again. One that
    has had its attempts fails with a reason staff can read, and is never claimed again.
    Returns the ids queued again (the caller gives each a task)."""
    now = timezone.now()
    crashed = Q(
        pk=study_id,
        status=Study.Status.RUNNING,
        status_changed_at__lt=now - timedelta(seconds=lease_seconds),
    )
    if token:
        crashed |= Q(status=Study.Status.RUNNING, claimed_by=token)
    rows = list(
        Study.objects.select_for_update(skip_locked=True)
        .filter(crashed)
        .values_list("pk", "attempts")
    )
    again = [pk for pk, attempts in rows if attempts < max_attempts]
    given_up = [pk for pk, attempts in rows if attempts >= max_attempts]
    Study.objects.filter(pk__in=again).update(
        status=Study.Status.QUEUED,
        isolated=True,
        failure_reason=f"retrying alone after: {CRASHED}",
        status_changed_at=now,
    )
    if given_up:
        reason = (
            f"{CRASHED}, {max_attempts} times; it will not be tried again. The file may be "
            "one the model cannot process: check it, or upload it again."
        )
        Study.objects.filter(pk__in=given_up).update(
            status=Study.Status.FAILED, failure_reason=reason, status_changed_at=now
        )
        audit_record_studies(
            actor=None,
            action=AuditEvent.Action.STUDY_FAILED,
            details={pk: {"reason": reason[:200]} for pk in given_up},
        )
    return again


def studies_claim(*, study_id: int, limit: int, token: str = "") -> list[Study]:
    """Atomically mark this task's study and other queued ones running, ``limit`` in all.

    The claim locks the rows it takes (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; on
    SQLite the transaction holds the database's write lock from BEGIN), so two workers never
    take the same study and neither waits for the other. An isolated study (one whose batch
    crashed, ``studies_recover_crashed``) is claimed only by its own task, and alone. A study
    left "running" is never claimed here: ``studies_recover_crashed`` decides first.
    """
    now = timezone.now()
    queued = Study.objects.select_for_update(skip_locked=True).filter(status=Study.Status.QUEUED)
    with transaction.atomic():
        own = queued.filter(pk=study_id).values_list("isolated", flat=True).first()
        if own:  # isolated: alone
            ids = [study_id]
        else:
            # A task whose own study an earlier batch took still fills a whole batch with the
            # oldest queued studies: with a burst queued, every batch stays full.
            ids = list(
                queued.filter(isolated=False)
                .order_by(Case(When(pk=study_id, then=0), default=1), "created_at", "id")
                .values_list("pk", flat=True)[:limit]
            )
        if ids:
            Study.objects.filter(pk__in=ids).update(
                status=Study.Status.RUNNING,
                status_changed_at=now,
                failure_reason="",
                attempts=F("attempts") + 1,
                claimed_by=token,
            )
    return list(Study.objects.filter(pk__in=ids).order_by("created_at", "id"))


@transaction.atomic
def study_mark_failed(*, study_id: int, reason: str) -> None:
    failed = (
        Study.objects.filter(pk=study_id)
        .exclude(status=Study.Status.DONE)
        .update(
            status=Study.Status.FAILED,
            failure_reason=reason[:2000],
            status_changed_at=timezone.now(),
        )
    )
    if failed:
        audit_record_studies(
            actor=None,
            action=AuditEvent.Action.STUDY_FAILED,
            details={study_id: {"reason": reason[:200]}},
        )


@transaction.atomic
def studies_release(
    *, study_ids: list[int], reason: str, max_attempts: int, isolate: bool = False
) -> None:
    """After a transient failure: back to "queued" for another try, or "failed" with the
    reason once a study has had ``max_attempts`` claims. Done studies are left alone.
    ``isolate``: the worker died, so each is tried alone from now on (``studies_claim``)."""
    now = timezone.now()
    pending = Study.objects.filter(pk__in=study_ids).exclude(status=Study.Status.DONE)
    pending.filter(attempts__lt=max_attempts).update(
        status=Study.Status.QUEUED,
        **({"isolated": True} if isolate else {}),
        failure_reason=f"retrying after: {reason}"[:2000],
        status_changed_at=now,
    )
    exhausted = pending.filter(attempts__gte=max_attempts)
    given_up = list(exhausted.values_list("pk", flat=True))
    exhausted.update(
        status=Study.Status.FAILED,
        failure_reason=f"gave up after {max_attempts} attempts: {reason}"[:2000],
        status_changed_at=now,
    )
    detail = {"reason": f"gave up after {max_attempts} attempts: {reason}"[:200]}
    audit_record_studies(
        actor=None,
        action=AuditEvent.Action.STUDY_FAILED,
        details=dict.fromkeys(given_up, detail),
    )


def studies_reconcile(*, queued_seconds: int, lease_seconds: int, max_attempts: int) -> dict:
    """Studies stuck past a deadline: "queued" with no task running them (the message was
    lost, or the broker was down at upload), or "running" past the lease (the worker died).
    Running ones go back to queued (or fail after ``max_attempts``). Returns how many went
    back, and the ids of the queued ones that are overdue: the caller gives each a fresh task
    (claims are exclusive, so a duplicate task is harmless)."""
    now = timezone.now()
    stale_running = list(
        Study.objects.filter(
            status=Study.Status.RUNNING,
            status_changed_at__lt=now - timedelta(seconds=lease_seconds),
        ).values_list("pk", flat=True)
    )
    studies_release(
        study_ids=stale_running,
        reason="its worker stopped (lease expired)",
        max_attempts=max_attempts,
        isolate=True,
    )
    overdue = list(
        Study.objects.filter(status=Study.Status.QUEUED)
        .filter(
            Q(pk__in=stale_running)
            | Q(status_changed_at__lt=now - timedelta(seconds=queued_seconds))
        )
        .values_list("pk", flat=True)
    )
    return {"requeued_running": len(stale_running), "overdue": overdue}
