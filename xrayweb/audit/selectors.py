from datetime import datetime

from django.apps import apps
from django.db.models import QuerySet

from xrayweb.audit.chain import Break, chain_verify
from xrayweb.audit.models import AuditEvent, ChainedModel, ChainHead


def audit_events(
    *,
    action: str = "",
    actor: str = "",
    study_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, narrowed by action, actor's username, study and time."""
    qs = AuditEvent.objects.select_related("actor")
    if action:
        qs = qs.filter(action=action)
    if actor:
        qs = qs.filter(actor__username=actor)
    if study_id is not None:
        qs = qs.filter(study_id=study_id)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def chains_verify() -> list[tuple[str, int, Break | None]]:
    """Every hash chain checked: (chain, rows checked, first break or None)."""
    results = []
    for model in apps.get_models():
        if issubclass(model, ChainedModel):
            head = ChainHead.objects.filter(name=model.CHAIN).first()
            checked, broken = chain_verify(model.objects.all(), head=head)
            results.append((model.CHAIN, checked, broken))
    return sorted(results)


def chain_check_latest() -> dict:
    """The newest verification for people: {"ok", "checked_at", "problem"}; ok is None when
    the chains were never verified."""
    from xrayweb.audit.models import ChainCheck

    latest = ChainCheck.objects.first()
    if latest is None:
        return {"ok": None, "checked_at": None, "problem": "never verified"}
    return {"ok": latest.ok, "checked_at": latest.checked_at.isoformat(), "problem": latest.problem}
