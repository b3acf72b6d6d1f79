"""The Storage SCP: chest CR and DX films in, by C-STORE, each stored through the upload
service (``instance_store``) before the response goes back; inference runs later, on the
queue. It answers C-ECHO too. Each association runs in a thread of its own (pynetdicom), with
a database connection of its own that is closed when the association ends.

A C-STORE data set is received to a temporary file as it arrives (pynetdicom's
``STORE_RECV_CHUNKED_DATASET``), never whole in memory, and the association is aborted as
soon as one message passes ``max_bytes`` (issue 27: a peer could send any size, held in
memory, checked only once it had all arrived)."""

import contextlib
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass, field

from django.db import connections
from pydicom import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
)
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification

from xrayweb.audit.models import AuditEvent
from xrayweb.audit.services import audit_record
from xrayweb.dicomnet.receiving import RECEIVED_NAME, instance_store, instance_too_large
from xrayweb.dicomnet.refusals import RefusalAudit
from xrayweb.studies.dicom import SUPPORTED_SYNTAXES

logger = logging.getLogger(__name__)

STORAGE_CLASSES = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
)
# The answer's ErrorComment is an LO: 64 characters at most.
ERROR_COMMENT_MAX = 64


def error_comment(message: str) -> str:
    """The reason as an ErrorComment: the command set is in the default repertoire (ASCII),
    64 characters at most; the full message is in the audit log."""
    text = message.removeprefix(f"{RECEIVED_NAME}: ").replace("×", "x")
    return text.encode("ascii", "replace").decode()[:ERROR_COMMENT_MAX]


def allowed_peers(entries: list[str]) -> dict[str, list | None]:
    """The allow-list: each entry "AET@HOST-OR-NETWORK" (an address, or a network such as
    10.1.0.0/16) ties a calling AE title to where it may come from, as Orthanc's
    DicomCheckModalityHost does; the same title may be listed with several. A bare "AET" may
    come from anywhere (refused in production: the title alone is what any peer can claim).
    Returns {title: [networks] or None for anywhere}."""
    peers: dict[str, list | None] = {}
    for entry in entries:
        title, _, where = entry.strip().partition("@")
        title = title.strip()
        if not title:
            raise ValueError(f"empty AE title in the allow-list entry {entry!r}")
        if not where.strip():
            peers[title] = None
            continue
        try:
            network = ipaddress.ip_network(where.strip(), strict=False)
        except ValueError as exc:
            raise ValueError(f"{entry!r}: {where!r} is not an address or network") from exc
        if title in peers and peers[title] is None:
            continue  # already allowed from anywhere
        peers.setdefault(title, []).append(network)
    return peers


def _address_allowed(networks: list | None, address: str) -> bool:
    if networks is None:
        return True
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(peer in network for network in networks)


@dataclass
class ListenerConfig:
    ae_title: str
    host: str
    port: int
    allowed_calling_aets: list[str] = field(default_factory=list)  # allowed_peers() entries
    max_associations: int = 10
    network_timeout: int = 60
    # DICOM TLS (PS3.15 Annex B): this node's certificate and key (PEM); with a CA file,
    # peers must present a certificate it signed.
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    # Refused associations: one audit row for the first from an address, then one summary
    # of the rest per interval (dicomnet/refusals.py).
    refusal_audit_seconds: float = 60.0
    # The largest data set one C-STORE may carry (MAX_UPLOAD_BYTES); past it (and the room a
    # command set and PDU headers take) the association is aborted while receiving.
    max_bytes: int = 50 * 1024 * 1024

    def ssl_context(self) -> ssl.SSLContext | None:
        if not (self.tls_cert or self.tls_key or self.tls_ca):
            return None
        if not (self.tls_cert and self.tls_key):
            raise ValueError("DICOM TLS needs both a certificate and its key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_ca:
            context.load_verify_locations(self.tls_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _peer(event) -> tuple[str, str, str]:
    """(calling AE title, called AE title, peer address) of the event's association."""
    requestor = event.assoc.requestor
    # The AE title the peer asked for (a refused one differs from ours).
    request = requestor.primitive
    called = getattr(request, "called_ae_title", None) or event.assoc.acceptor.ae_title
    # Before negotiation (EVT_REQUESTED) only the request names the calling AE title.
    calling = requestor.ae_title or getattr(request, "calling_ae_title", None) or ""
    return (calling.strip(), (called or "").strip(), requestor.address or "")


def _audit_association(event, outcome: str, user, reason: str = "") -> None:
    calling, called, address = _peer(event)
    detail = {"outcome": outcome, "calling_ae": calling, "called_ae": called}
    audit_record(
        actor=user,
        action=AuditEvent.Action.DICOM_ASSOCIATION,
        detail=detail | ({"reason": reason} if reason else {}),
        ip=address or None,
    )


# What a message may carry beyond its data set: the command set, PDU and PDV headers.
MESSAGE_OVERHEAD = 1024 * 1024


def _discard_partial(assoc) -> None:
    """Delete the temporary file of a C-STORE whose data set never finished arriving (an
    aborted association). pynetdicom deletes finished ones after the C-STORE handler, but
    keeps an unfinished one on its DIMSE message (a private attribute, pinned by the tests)."""
    message = getattr(getattr(assoc, "dimse", None), "message", None)
    partial = getattr(message, "_data_set_file", None)
    if partial is None:
        return
    message._data_set_file = None
    partial.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial.name)


def _release_connection(event) -> None:
    _discard_partial(event.assoc)
    # The association's thread ends here: its database connection goes with it, so that many
    # associations over time never hold more connections than are open at once.
    connections.close_all()


class Listener:
    """``start()`` opens the port and returns; ``stop()`` closes it and ends the open
    associations. ``user`` is the service account the audit names."""

    def __init__(self, config: ListenerConfig, *, user) -> None:
        self.config = config
        self.user = user
        self.server = None
        self.peers = allowed_peers(config.allowed_calling_aets)
        self._ssl = config.ssl_context()
        self.refusals = RefusalAudit(user=user, interval=config.refusal_audit_seconds)

    def _refused(self, event, reason: str) -> None:
        calling, called, address = _peer(event)
        logger.info("association from %s (%s) refused: %s", address, calling, reason)
        self.refusals.refused(address=address, calling_ae=calling, called_ae=called, reason=reason)

    def _on_requested(self, event) -> None:
        """A title on the allow-list, from an address it is not tied to: rejected as "calling
        AE title not recognised" before any negotiation, and audited."""
        calling = (event.assoc.requestor.primitive.calling_ae_title or "").strip()
        address = event.assoc.requestor.address or ""
        if calling not in self.peers or _address_allowed(self.peers[calling], address):
            return  # pynetdicom's own checks decide
        event.assoc.acse.send_reject(0x01, 0x01, 0x03)
        self._refused(event, "calling AE title not allowed from this address")
        event.assoc.kill()

    def _on_data(self, event) -> None:
        """Each PDU as it arrives: bytes since the last C-STORE are counted, and a message
        past the limit aborts the association before the rest is read."""
        assoc = event.assoc
        assoc.xrayweb_bytes = getattr(assoc, "xrayweb_bytes", 0) + len(event.data)
        if assoc.xrayweb_bytes <= self.config.max_bytes + MESSAGE_OVERHEAD:
            return
        if getattr(assoc, "xrayweb_aborted", False):
            return
        assoc.xrayweb_aborted = True
        calling, _, address = _peer(event)
        logger.warning("C-STORE from %s past the size limit: association aborted", calling)
        instance_too_large(
            limit=self.config.max_bytes,
            user=self.user,
            via="c-store",
            calling_ae=calling,
            ip=address or None,
            aborted=True,
        )
        # Queued, not waited for: this handler runs in the association's own reader thread,
        # and pynetdicom 3's abort() blocks by default until that thread has ended, so it
        # waited on itself for ever (and the process could not exit). The reader sends the
        # A-ABORT and stops at its next turn.
        assoc.abort(block=False)
        _discard_partial(assoc)

    def _ae(self) -> AE:
        ae = AE(ae_title=self.config.ae_title)
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.peers)
        ae.maximum_associations = self.config.max_associations
        for timeout in ("acse_timeout", "dimse_timeout", "network_timeout"):
            setattr(ae, timeout, self.config.network_timeout)
        ae.add_supported_context(Verification)
        for sop_class in STORAGE_CLASSES:
            ae.add_supported_context(sop_class, sorted(SUPPORTED_SYNTAXES))
        return ae

    def _on_store(self, event) -> int | object:
        calling, _, address = _peer(event)
        event.assoc.xrayweb_bytes = 0  # the next message counts from here
        try:
            # Received to disk; read only once it is known to be within the limit.
            path = event.dataset_path
            if path.stat().st_size > self.config.max_bytes:
                received = instance_too_large(
                    limit=self.config.max_bytes,
                    user=self.user,
                    via="c-store",
                    calling_ae=calling,
                    ip=address or None,
                )
            else:
                received = instance_store(
                    data=path.read_bytes(),
                    user=self.user,
                    via="c-store",
                    calling_ae=calling,
                    ip=address or None,
                )
        except Exception:  # never leave the sender without an answer
            logger.exception("C-STORE from %s failed", calling)
            return 0xA700
        if received.ok:
            logger.info(
                "C-STORE from %s: %s (study %s)", calling, received.outcome, received.study_id
            )
            return received.status
        logger.info("C-STORE from %s refused: %s", calling, received.message)
        status = Dataset()
        status.Status = received.status
        status.ErrorComment = error_comment(received.message)
        return status

    def _on_accepted(self, event) -> None:
        _audit_association(event, "accepted", self.user)

    def _on_rejected(self, event) -> None:
        calling, called, _ = _peer(event)
        allowed = self.peers
        if called != self.config.ae_title:
            reason = "called AE title not recognised"
        elif allowed and calling not in allowed:
            reason = "calling AE title not allowed"
        else:
            reason = "too many associations"
        self._refused(event, reason)
        _release_connection(event)

    def start(self) -> None:
        # Process-wide in pynetdicom: every SCP here receives data sets to temporary files.
        _config.STORE_RECV_CHUNKED_DATASET = True
        self.refusals.start()
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, lambda event: 0x0000),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_DATA_RECV, self._on_data),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_RELEASED, _release_connection),
            (evt.EVT_ABORTED, _release_connection),
            (evt.EVT_CONN_CLOSE, _release_connection),
        ]
        self.server = self._ae().start_server(
            (self.config.host, self.config.port),
            block=False,
            evt_handlers=handlers,
            ssl_context=self._ssl,
        )

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        self.refusals.stop()
