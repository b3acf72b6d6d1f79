"""Refused associations, audited as one summary per source and interval (issue 27). Anyone
who can reach the port can have an association refused, so a chained audit row per refusal
let an unauthenticated peer flood the chain (and its one head lock, which every upload and
reading also takes). Refusals are counted in memory per peer address; the first one from an
address writes a row at once (an alarm should not wait), and the rest of each interval are
written as one row with their counts when it ends, or when the listener stops."""

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from django.db import connections

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record


@dataclass
class _Tally:
    since: float
    count: int = 0
    calling_aes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)


class RefusalAudit:
    """``refused(address, calling_ae, called_ae, reason)`` from any association thread;
    ``start()`` runs the flusher every ``interval`` seconds, ``stop()`` writes what is left."""

    def __init__(self, *, user, interval: float) -> None:
        self.user = user
        self.interval = interval
        self._lock = threading.Lock()
        self._open: dict[str, _Tally] = {}  # address -> refusals not yet written
        self._seen: dict[str, float] = {}  # address -> when its interval began
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refused(self, *, address: str, calling_ae: str, called_ae: str, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            began = self._seen.get(address)
            first = began is None or now - began >= self.interval
            if first:
                self._seen[address] = now
            tally = self._open.setdefault(address, _Tally(since=now))
            tally.count += 1
            tally.calling_aes[calling_ae] += 1
            tally.reasons[reason] += 1
            if first:  # written now, alone: an alarm should not wait for the interval
                self._open.pop(address)
        if first:
            self._write(address, tally, called_ae=called_ae, first=True)

    def flush(self, *, everything: bool = False) -> int:
        """Write the tallies whose interval has ended (all of them with ``everything``);
        returns how many rows were written."""
        now = time.monotonic()
        with self._lock:
            due = {
                address: tally
                for address, tally in self._open.items()
                if everything or now - self._seen.get(address, tally.since) >= self.interval
            }
            for address in due:
                self._open.pop(address)
            # An address whose interval has ended opens a new one at its next refusal; so
            # that many addresses over time are not all remembered.
            for address, began in list(self._seen.items()):
                if address not in self._open and now - began >= self.interval:
                    del self._seen[address]
        for address, tally in due.items():
            self._write(address, tally, called_ae="", first=False)
        return len(due)

    def _write(self, address: str, tally: _Tally, *, called_ae: str, first: bool) -> None:
        if first:  # one refusal, said as the accepted associations are
            (calling_ae,), (reason,) = tally.calling_aes, tally.reasons
            detail = {"calling_ae": calling_ae, "called_ae": called_ae, "reason": reason}
        else:  # the rest of the interval: counts (20 titles at most: a peer can send any)
            detail = {
                "calling_aes": dict(tally.calling_aes.most_common(20)),
                "reasons": dict(tally.reasons),
            }
        detail = {
            "outcome": "rejected",
            "refusals": tally.count,
            "interval_s": self.interval,
            "summary": "first" if first else "the rest of the interval",
            **detail,
        }
        try:
            audit_record(
                actor=self.user,
                action=AuditEvent.Action.DICOM_ASSOCIATION,
                detail=detail,
                ip=address or None,
            )
        finally:
            if threading.current_thread() is not threading.main_thread():
                connections.close_all()  # an association's or the flusher's thread

    def _run(self) -> None:
        while not self._stop.wait(min(self.interval, 5.0)):
            self.flush()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="refusal-audit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush(everything=True)
