"""Tamper evidence: every row of an audited table carries a keyed hash of its own content and
of the row before it, so a row changed, removed or inserted behind the application's back
breaks the chain where it happened.

The hash is an HMAC with ``AUDIT_CHAIN_KEY``: somebody who can write to the database but does
not hold the key cannot forge a chain that verifies. A head row per chain keeps the last
sequence number and hash, so rows removed from the end are noticed too. Appending takes the
head's row lock first (an UPDATE, which also serialises writers on SQLite), so concurrent
writers never fork the chain.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import F

GENESIS = "0" * 64
SKIPPED = {"id", "seq", "chain_hash"}
# Columns added after rows were already chained (issue 27: who acted, as of the act): an empty
# value is left out of the hash, so the rows written before them still verify.
ADDED_LATER = {"actor_username", "actor_name", "reviewer_username", "reviewer_name"}


def _plain(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def row_content(row) -> dict:
    """The stored content of ``row``: every concrete column but the chain's own, as the
    database holds it (foreign keys as ids, datetimes in UTC)."""
    content = {}
    for field in row._meta.concrete_fields:
        if field.attname in SKIPPED:
            continue
        if field.attname in ADDED_LATER and not getattr(row, field.attname):
            continue
        content[field.attname] = _plain(field.get_prep_value(getattr(row, field.attname)))
    return content


def row_hash(*, key: str, previous: str, seq: int, content: dict) -> str:
    message = json.dumps(
        {"previous": previous, "seq": seq, "content": content},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def chain_key() -> str:
    return settings.AUDIT_CHAIN_KEY


def chain_link(rows, *, head_model, name: str) -> None:
    """Give ``rows`` (unsaved, in order) their sequence numbers and hashes after the head of
    chain ``name``, and move the head on. Call inside the transaction that inserts them."""
    if not head_model.objects.filter(name=name).update(seq=F("seq")):  # takes the lock
        head_model.objects.get_or_create(name=name, defaults={"seq": 0, "hash": GENESIS})
        head_model.objects.filter(name=name).update(seq=F("seq"))
    head = head_model.objects.get(name=name)  # the UPDATE above holds its lock
    seq, previous, key = head.seq, head.hash, chain_key()
    for row in rows:
        seq += 1
        row.seq = seq
        row.chain_hash = row_hash(key=key, previous=previous, seq=seq, content=row_content(row))
        previous = row.chain_hash
    head_model.objects.filter(name=name).update(seq=seq, hash=previous)


@dataclass(frozen=True)
class Break:
    table: str
    row_id: int | None
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"row id={self.row_id}" if self.row_id is not None else "the chain's end"
        at = f" (seq {self.seq})" if self.seq is not None else ""
        return f"{self.table}: {where}{at}: {self.problem}"


def chain_verify(queryset, *, head, key: str | None = None) -> tuple[int, Break | None]:
    """Walk a chained table in sequence order: (rows checked, the first break or None)."""
    key = key or chain_key()
    table = queryset.model._meta.db_table
    if head is None:  # the migration that made the table made its head
        return 0, Break(
            table,
            None,
            None,
            "the chain's head is missing: it was removed behind "
            "the application's back, perhaps with the rows",
        )
    unchained = queryset.filter(seq__isnull=True).order_by("id").first()
    if unchained is not None:
        return 0, Break(
            table,
            unchained.pk,
            None,
            "has no place in the chain: inserted behind the application's back",
        )
    expected, previous, checked = 1, GENESIS, 0
    for row in queryset.order_by("seq").iterator(chunk_size=2000):
        if row.seq != expected:
            missing = (
                f"seq {expected}" if row.seq == expected + 1 else (f"seq {expected}-{row.seq - 1}")
            )
            return checked, Break(
                table, row.pk, row.seq, f"the rows before it ({missing}) were removed"
            )
        digest = row_hash(key=key, previous=previous, seq=row.seq, content=row_content(row))
        if not hmac.compare_digest(digest, row.chain_hash):
            return checked, Break(
                table,
                row.pk,
                row.seq,
                "its content or hash was changed, or it was inserted behind the application's back",
            )
        previous, expected, checked = row.chain_hash, expected + 1, checked + 1
    head_seq, head_hash = head.seq, head.hash
    if head_seq != checked:
        problem = (
            f"the chain ends at seq {checked} but {head_seq} rows were written: the last "
            f"{head_seq - checked} were removed"
            if head_seq > checked
            else f"the chain's head says {head_seq} rows but {checked} are chained"
        )
        return checked, Break(table, None, head_seq, problem)
    if not hmac.compare_digest(head_hash, previous):
        return checked, Break(
            table, None, head_seq, "the last row differs from the one the head recorded"
        )
    return checked, None
