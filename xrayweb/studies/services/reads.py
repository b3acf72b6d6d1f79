"""Reads that are audited without changing anything: lists of studies."""

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record


def study_list_read_record(*, user, ids: list[int], query: str, ip: str | None) -> None:
    """Audit a list of studies read: the ids shown and the filters that chose them."""
    audit_record(
        actor=user,
        action=AuditEvent.Action.STUDY_LIST,
        detail={"ids": ids, "query": query[:500]},
        ip=ip,
    )
