from xrayweb.audit.models import AuditEvent, user_names


def audit_record(
    *, actor, action: str, study=None, detail: dict | None = None, ip: str | None = None
) -> AuditEvent:
    """Append an audit event: the one way the application writes to the audit trail. Details
    carry keys and counts, never patient identifiers. ``actor`` may be a service user (the
    worker, a command's --user) or None for the system itself."""
    actor = actor if getattr(actor, "is_authenticated", False) else None
    username, name = user_names(actor)
    return AuditEvent.objects.create(
        actor=actor,
        actor_username=username,
        actor_name=name,
        action=action,
        study=study,
        detail=detail or {},
        ip=ip or None,
    )


def audit_record_studies(
    *, actor, action: str, details: dict[int, dict], ip: str | None = None
) -> list[AuditEvent]:
    """Append one event per study (``details``: study id -> detail) in one insert: what a
    worker does to a batch of studies."""
    actor = actor if getattr(actor, "is_authenticated", False) else None
    username, name = user_names(actor)
    events = [
        AuditEvent(
            actor=actor,
            actor_username=username,
            actor_name=name,
            action=action,
            study_id=study_id,
            detail=detail,
            ip=ip or None,
        )
        for study_id, detail in details.items()
    ]
    return AuditEvent.objects.bulk_create(events) if events else []


def chains_check(*, via: str, results: list | None = None):
    """Verify every chain (or take ``results`` of ``chains_verify`` already run) and record
    the outcome as a ChainCheck row, which /healthz and the audit log page show admins."""
    from xrayweb.audit.models import ChainCheck
    from xrayweb.audit.selectors import chains_verify

    results = chains_verify() if results is None else results
    broken = [str(problem) for _, _, problem in results if problem is not None]
    return ChainCheck.objects.create(
        ok=not broken,
        rows={chain: checked for chain, checked, _ in results},
        problem=broken[0] if broken else "",
        via=via,
    )
