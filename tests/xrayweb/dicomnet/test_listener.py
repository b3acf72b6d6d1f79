"""The Storage SCP against DCMTK's echoscu and storescu, and Orthanc routing to it."""

import gc
import io
import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
from django.db import connection
from pydicom import dcmread

from tests.xrayweb.dicomnet import films
from tests.xrayweb.dicomnet.peers import FORWARD_LUA, NO_FORWARD_LUA, free_port, tool, wait_until
from xrayweb.audit.models import AuditEvent
from xrayweb.dicomnet.listener import Listener, ListenerConfig
from xrayweb.dicomnet.receiving import accession_from_study_uid, service_user
from xrayweb.studies.models import Study

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def enqueued(mocker):
    """Inference is not run here: what was announced is recorded instead."""
    return mocker.patch("xrayweb.inference.tasks.study_enqueue")


@pytest.fixture
def start_listener(enqueued):
    started = []

    def start(**options) -> Listener:
        config = ListenerConfig(ae_title="XRAYWEB", host="127.0.0.1", port=0, **options)
        listener = Listener(config, user=service_user())
        listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


def echo(port: int, *, called: str = "XRAYWEB", calling: str = "ECHOSCU"):
    return subprocess.run(
        [tool("echoscu"), "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def store(port: int, *paths: Path, calling: str = "STORESCU", options=()):
    return subprocess.run(
        [tool("storescu"), *options, "-aet", calling, "-aec", "XRAYWEB", "127.0.0.1", str(port)]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=120,
    )


def pynetdicom_store(port: int, ds, *, calling: str = "STORESCU"):
    """pynetdicom as the sender, to read the whole C-STORE response (status, ErrorComment);
    an empty Dataset when the listener aborted the association."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="XRAYWEB")
    assert assoc.is_established
    status = assoc.send_c_store(ds)
    if assoc.is_established:
        assoc.release()
    return status


def associations(outcome: str, count: int = 1) -> list[dict]:
    """The audited associations with this outcome, once ``count`` are there: the listener
    records a refusal just after the peer has read it."""

    def found() -> list[dict]:
        events = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_ASSOCIATION)
        return [e.detail for e in events if e.detail["outcome"] == outcome]

    wait_until(lambda: len(found()) >= count, timeout=10)
    return found()


def test_echo_succeeds_with_the_right_called_ae_title_and_is_audited(start_listener):
    listener = start_listener()
    result = echo(listener.port)
    assert result.returncode == 0, result.stderr
    (accepted,) = associations("accepted")
    assert accepted == {"outcome": "accepted", "calling_ae": "ECHOSCU", "called_ae": "XRAYWEB"}


def test_a_wrong_called_ae_title_is_refused_and_audited(start_listener):
    listener = start_listener()
    result = echo(listener.port, called="NOTXRAYWEB")
    assert result.returncode != 0
    assert "Called AE Title Not Recognized" in result.stderr
    (rejected,) = associations("rejected")
    assert rejected["called_ae"] == "NOTXRAYWEB"
    assert rejected["reason"] == "called AE title not recognised"


def test_a_calling_ae_title_outside_the_allow_list_is_refused(start_listener):
    listener = start_listener(allowed_calling_aets=["PACS1", "MODALITY2"])
    assert echo(listener.port, calling="PACS1").returncode == 0
    refused = echo(listener.port, calling="STRANGER")
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stderr
    (rejected,) = associations("rejected")
    assert rejected["calling_ae"] == "STRANGER"
    assert rejected["reason"] == "calling AE title not allowed"


def test_an_association_past_the_limit_is_refused(start_listener):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    listener = start_listener(max_associations=1)
    ae = AE(ae_title="HOLDER")
    ae.add_requested_context(Verification)
    held = ae.associate("127.0.0.1", listener.port, ae_title="XRAYWEB")
    assert held.is_established
    try:
        refused = echo(listener.port, calling="SECOND")
        assert refused.returncode != 0
        assert "Local Limit Exceeded" in refused.stderr, refused.stderr
    finally:
        held.release()
    (rejected,) = associations("rejected")
    assert rejected["calling_ae"] == "SECOND" and rejected["reason"] == "too many associations"
    # A free slot again, once the listener has seen the release.
    assert wait_until(lambda: echo(listener.port).returncode == 0, timeout=10)


@pytest.mark.parametrize(
    ("syntax", "propose"),
    [
        (None, ()),
        ("JPEG-LS Lossless", ("-xt",)),
        ("JPEG 2000 Image Compression (Lossless", ("-xv",)),
        ("RLE", ("-xr",)),
        ("JPEGLosslessSV1", ("-xs",)),
    ],
)
def test_a_film_stored_by_storescu_becomes_one_study_with_the_header_identifiers(
    start_listener, enqueued, tmp_path, syntax, propose
):
    """Native and compressed films each become exactly one study, uploaded by the service
    user, announced for inference, audited with the calling AE title."""
    listener = start_listener()
    data = (
        films.compressed(syntax)
        if syntax
        else films.write(tmp_path, "x", films.film()).read_bytes()
    )
    path = films.write(tmp_path, "film.dcm", data)
    header = dcmread(io.BytesIO(data), stop_before_pixels=True)
    result = store(listener.port, path, options=propose)  # sent compressed, as it is
    assert result.returncode == 0, result.stderr
    study = Study.objects.get()
    assert study.sop_instance_uid == header.SOPInstanceUID
    assert study.study_instance_uid == header.StudyInstanceUID
    assert study.patient_id == header.PatientID
    assert study.accession == header.AccessionNumber
    assert study.uploaded_by.username == "dicom-node"
    assert study.status == Study.Status.QUEUED
    enqueued.assert_called_once_with(study.pk)
    with study.original.open("rb") as f:
        stored = dcmread(f)
    # The data set as sent, in the transfer syntax it was sent in; the file meta is rebuilt
    # by the receiver (it does not travel over DIMSE).
    sent = dcmread(io.BytesIO(data))
    assert stored.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    assert stored == sent
    upload = AuditEvent.objects.get(action=AuditEvent.Action.STUDY_UPLOAD)
    assert upload.study == study and upload.actor.username == "dicom-node"
    assert upload.detail == {"via": "c-store", "calling_ae": "STORESCU"}


def test_the_same_film_again_is_answered_with_success_and_stays_one_study(start_listener, tmp_path):
    listener = start_listener()
    path = films.write(tmp_path, "film.dcm", films.film())
    assert store(listener.port, path).returncode == 0
    again = store(listener.port, path)
    assert again.returncode == 0, again.stderr  # a PACS that timed out resends
    study = Study.objects.get()
    duplicate = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_INSTANCE)
    assert duplicate.detail["outcome"] == "duplicate" and duplicate.study == study


def test_another_image_under_a_stored_sop_uid_is_refused_and_audited_as_a_conflict(
    start_listener, tmp_path
):
    """Issue 27: a device that reuses a UID. Before, the second image was answered Success
    and dropped."""

    listener = start_listener()
    first = films.film(index=0)
    assert store(listener.port, films.write(tmp_path, "a.dcm", first)).returncode == 0
    stored = Study.objects.get().image_sha256
    other = films.film(index=1, SOPInstanceUID=first.SOPInstanceUID)
    status = pynetdicom_store(listener.port, other)
    assert status.Status == 0x0111  # Duplicate SOP Instance (PS3.7 Annex C), a failure
    assert status.ErrorComment.startswith("a different image carries the SOPInstanceUID")
    study = Study.objects.get()
    assert study.image_sha256 == stored  # the first image, untouched
    conflict = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_INSTANCE)
    assert conflict.detail["outcome"] == "conflict" and conflict.study == study
    assert conflict.detail["sop_instance_uid"] == first.SOPInstanceUID
    # The first image sent again is still a plain, successful duplicate.
    assert store(listener.port, tmp_path / "a.dcm").returncode == 0


def test_a_film_without_an_accession_gets_one_from_its_study_uid(start_listener, tmp_path):
    listener = start_listener()
    ds = films.film(AccessionNumber=None)
    path = films.write(tmp_path, "film.dcm", ds)
    assert store(listener.port, path).returncode == 0
    study = Study.objects.get()
    assert study.accession == accession_from_study_uid(ds.StudyInstanceUID)
    assert study.accession.startswith("XW") and len(study.accession) == 16


@pytest.mark.parametrize("name", ["rows-mismatch.dcm", "no-pixels.dcm", "bad-window.dcm"])
def test_a_broken_film_gets_a_failure_status_naming_the_problem_and_stores_nothing(
    start_listener, enqueued, tmp_path, name
):
    listener = start_listener()
    path = films.write(tmp_path, name, films.broken(name))
    result = store(listener.port, path, options=("-v",))
    assert result.returncode != 0
    assert "Received Store Response (Error: CannotUnderstand)" in result.stderr, result.stderr
    assert not Study.objects.exists()
    enqueued.assert_not_called()
    refused = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_INSTANCE)
    assert refused.detail["outcome"] == "refused" and refused.detail["calling_ae"] == "STORESCU"
    assert refused.detail["reason"]


def test_the_failure_status_carries_the_reason_as_error_comment(start_listener, tmp_path):
    """pynetdicom as the sender, to read the response's ErrorComment."""

    listener = start_listener()
    ds = dcmread(io.BytesIO(films.broken("rows-mismatch.dcm")))
    status = pynetdicom_store(listener.port, ds, calling="SENDER")
    assert status.Status == 0xC000
    assert status.ErrorComment.startswith("Rows x Columns (118x128) do not match")
    assert len(status.ErrorComment) <= 64 and status.ErrorComment.isascii()


def _open_connections() -> int:
    """Database connections open to the test database: sessions on PostgreSQL; on SQLite,
    sqlite3 connections not closed. The PostgreSQL count is the one that catches a leak
    (without the listener's close it ends at 7 against 1, measured); an SQLite connection
    also closes when its thread's storage is collected, so there the check is weaker."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]

    def is_open(obj) -> bool:
        try:
            # type(), not isinstance(): the latter asks some modules' __getattr__ for __class__.
            return type(obj) is sqlite3.Connection and obj.total_changes >= 0
        except sqlite3.ProgrammingError:  # closed
            return False
        except ReferenceError:  # a weak proxy whose object is gone
            return False

    gc.collect()
    return sum(1 for o in gc.get_objects() if is_open(o))


def test_six_parallel_associations_store_six_studies_and_leave_no_connection_open(
    start_listener, tmp_path
):
    listener = start_listener(max_associations=6)
    Study.objects.exists()  # this thread's own connection is open before counting
    before = _open_connections()
    paths = [films.write(tmp_path, f"f{i}.dcm", films.film(index=i % 4)) for i in range(6)]
    results = [None] * 6

    def send(i: int) -> None:
        results[i] = store(listener.port, paths[i], calling=f"MOD{i}")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert Study.objects.count() == 6
    assert len(associations("accepted", count=6)) == 6
    assert wait_until(lambda: _open_connections() == before, timeout=10), (
        f"{_open_connections()} connections open, {before} before the associations"
    )


def test_orthanc_routes_a_new_study_to_the_listener_with_a_lua_rule(start_listener, orthanc_clean):
    """The README's routing rule: Orthanc forwards what it stores to XRAYWEB."""
    listener = start_listener()
    orthanc = orthanc_clean
    orthanc.add_modality("xrayweb", aet="XRAYWEB", host="127.0.0.1", port=listener.port)
    orthanc.execute_lua(FORWARD_LUA.format(modality="xrayweb", aet="XRAYWEB"))
    try:
        ds = films.film()
        orthanc.upload(films.to_bytes(ds))
        assert wait_until(lambda: Study.objects.exists(), timeout=30), orthanc.log_tail()
    finally:
        orthanc.execute_lua(NO_FORWARD_LUA)
        orthanc.remove_modality("xrayweb")
    study = Study.objects.get()
    assert study.sop_instance_uid == ds.SOPInstanceUID
    upload = AuditEvent.objects.get(action=AuditEvent.Action.STUDY_UPLOAD)
    assert upload.detail == {"via": "c-store", "calling_ae": orthanc.aet}


def test_the_listener_command_prints_its_address_and_stops_cleanly_on_sigterm(tmp_path):
    """`manage.py dicom_listener` as `make run` starts it: echo works, SIGTERM ends it with
    status 0 and the port closed."""
    import signal
    import sys

    from tests.xrayweb.test_end_to_end import _test_database_url

    port = free_port()
    root = Path(__file__).resolve().parents[3]
    env = os.environ | {
        "DATABASE_URL": _test_database_url(),
        "DICOM_PORT": str(port),
        "XRAYWEB_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "dicom_listener"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert f"DICOM listener on 127.0.0.1:{port} as XRAYWEB" in first, first
        assert echo(port).returncode == 0
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "DICOM listener stopped" in out
    assert echo(port).returncode != 0  # nobody listens any more


def test_the_readmes_routing_rule_is_the_one_tested_here():
    """The front page's Orthanc Lua script is FORWARD_LUA, less its comments."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    shown = readme.split("```lua\n", 1)[1].split("```", 1)[0]
    tested = FORWARD_LUA.format(modality="xrayweb", aet="XRAYWEB")
    assert shown == "".join(
        line for line in tested.splitlines(keepends=True) if not line.lstrip().startswith("--")
    )
    assert '"DicomModalities": {"xrayweb": ["XRAYWEB", "127.0.0.1", 11112]}' in readme


# Peers (issue 27): an AE title is tied to where it may come from, and DICOM TLS.


def test_an_allowed_title_from_an_address_it_is_not_tied_to_is_refused_and_audited(
    start_listener,
):
    """Before, the calling AE title was the only control, and any peer can claim one."""
    listener = start_listener(allowed_calling_aets=["PACS1@127.0.0.1", "REMOTE@10.9.9.0/24"])
    assert echo(listener.port, calling="PACS1").returncode == 0
    refused = echo(listener.port, calling="REMOTE")  # the right title, from the wrong host
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stderr
    (rejected,) = associations("rejected")
    assert rejected["calling_ae"] == "REMOTE"
    assert rejected["reason"] == "calling AE title not allowed from this address"


def test_the_allow_list_refuses_what_is_not_an_address_or_network():
    from xrayweb.dicomnet.listener import allowed_peers

    peers = allowed_peers(["PACS@10.1.2.3", "PACS@10.2.0.0/16", "ANY"])
    assert [str(n) for n in peers["PACS"]] == ["10.1.2.3/32", "10.2.0.0/16"]
    assert peers["ANY"] is None
    with pytest.raises(ValueError, match="not an address or network"):
        allowed_peers(["PACS@pacs.example.org"])


def test_in_production_the_listener_refuses_a_title_not_tied_to_a_host(settings):
    from django.core.management import CommandError, call_command

    settings.PRODUCTION = True
    settings.DICOM_PORT = 0
    for entries in ([], ["PACS@10.1.2.3", "ANYWHERE"]):
        settings.DICOM_ALLOWED_CALLING_AETS = entries
        with pytest.raises(CommandError, match="tied to its host or network"):
            call_command("dicom_listener")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def certificates(tmp_path) -> Path:
    """A test CA, and a server and a client certificate it signed (openssl, PEM)."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=xrayweb test CA", cwd=tmp_path,
    )  # fmt: skip
    for name in ("server", "client"):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}", cwd=tmp_path,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-sha256", cwd=tmp_path,
        )  # fmt: skip
    return tmp_path


def test_a_real_dcmtk_tls_association_stores_a_film_and_plain_tcp_is_refused(
    start_listener, certificates, tmp_path
):
    c = certificates
    listener = start_listener(
        tls_cert=str(c / "server.crt"), tls_key=str(c / "server.key"), tls_ca=str(c / "ca.crt")
    )
    path = films.write(tmp_path, "film.dcm", films.film())
    tls = ("+tls", str(c / "client.key"), str(c / "client.crt"), "+cf", str(c / "ca.crt"))
    result = store(listener.port, path, options=tls)
    assert result.returncode == 0, result.stderr
    assert Study.objects.count() == 1
    assert store(listener.port, path).returncode != 0  # plain TCP: no association
    # TLS without a certificate the CA signed: refused too.
    anonymous = store(listener.port, path, options=("+tla", "+cf", str(c / "ca.crt")))
    assert anonymous.returncode != 0
    assert Study.objects.count() == 1


def _refuse(port: int, calling: str) -> bool:
    """One association from pynetdicom with a title the listener refuses; True if refused."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title="XRAYWEB")
    refused = assoc.is_rejected
    if assoc.is_established:
        assoc.release()
    return refused


def test_a_flood_of_refused_associations_is_audited_as_one_summary_per_interval(
    start_listener,
):
    """Before, every refused association wrote a chained audit row under the chain's one
    head lock: anyone who reached the port could flood it. A real flood of 150 refused
    associations, from 4 threads with 150 different titles, now writes two rows: the first
    refusal at once, and the other 149 counted in one row when the listener stops (or the
    interval ends)."""
    listener = start_listener(allowed_calling_aets=["PACS1"], refusal_audit_seconds=3600)
    titles = iter([f"FLOOD{i:03d}" for i in range(150)])
    lock = threading.Lock()
    outcomes = []

    def flood():
        while True:
            with lock:
                title = next(titles, None)
            if title is None:
                return
            outcomes.append(_refuse(listener.port, title))

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(True) == 150
    first = associations("rejected")
    assert len(first) == 1 and first[0]["refusals"] == 1
    assert first[0]["reason"] == "calling AE title not allowed"
    listener.stop()  # what is left of the interval is written on the way out
    rows = associations("rejected", count=2)
    assert len(rows) == 2
    rest = rows[0] if rows[0]["summary"] != "first" else rows[1]
    assert rest["refusals"] == 149
    assert rest["reasons"] == {"calling AE title not allowed": 149}
    assert len(rest["calling_aes"]) == 20 and sum(rest["calling_aes"].values()) == 20
    events = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_ASSOCIATION)
    assert {e.ip for e in events} == {"127.0.0.1"}


def test_refusals_in_a_new_interval_start_a_new_first_row(start_listener):
    listener = start_listener(allowed_calling_aets=["PACS1"], refusal_audit_seconds=0.5)
    assert _refuse(listener.port, "ONE") and _refuse(listener.port, "TWO")
    # the flusher writes the second refusal once its interval has ended
    rows = associations("rejected", count=2)
    assert [r["refusals"] for r in rows] == [1, 1]
    wait_until(lambda: listener.refusals.flush() == 0 and not listener.refusals._open, timeout=5)
    assert _refuse(listener.port, "THREE")
    rows = associations("rejected", count=3)
    assert [r.get("calling_ae") for r in rows if r["summary"] == "first"] == ["THREE", "ONE"]


# Sizes (issue 27): before, pynetdicom held a C-STORE data set whole in memory, and the
# limit was checked only once all of it had arrived.


@pytest.fixture
def received_here(tmp_path, monkeypatch):
    """Where pynetdicom writes data sets as they arrive (its temporary files)."""
    import tempfile

    folder = tmp_path / "incoming"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _instances(outcome: str) -> list[dict]:
    events = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_INSTANCE)
    return [e.detail for e in events if e.detail["outcome"] == outcome]


@pytest.mark.parametrize("pynetdicom_abort", ["as left", "blocking"])
def test_a_film_past_the_limit_aborts_the_association_while_it_arrives(
    start_listener, received_here, monkeypatch, pynetdicom_abort
):
    """A 3.9 MB film against a 100 kB limit: the listener aborts once a little over the
    limit (plus 1 MB for headers) has arrived, keeps none of it, and audits why. pynetdicom
    swaps ``assoc.abort`` between a blocking and a queueing variant as its own handlers run
    in the association's thread; "blocking" is the state in which the abort, made from the
    reader thread, once waited on that thread for ever (CI hung at exit)."""
    if pynetdicom_abort == "blocking":
        on_data = Listener._on_data

        def blocking_then_on_data(self, event):
            event.assoc.abort = event.assoc._abort_blocking
            on_data(self, event)

        monkeypatch.setattr(Listener, "_on_data", blocking_then_on_data)
    listener = start_listener(max_bytes=100 * 1024)
    ds = films.film(width=1400)
    assert len(ds.PixelData) > 3_500_000
    status = pynetdicom_store(listener.port, ds)
    assert "Status" not in status  # no answer: the association was aborted
    wait_until(lambda: _instances("refused"), timeout=10)
    (refused,) = _instances("refused")
    assert "larger than 100 kB" in refused["reason"] and "aborted" in refused["reason"]
    assert refused["calling_ae"] == "STORESCU"
    wait_until(lambda: not list(received_here.iterdir()), timeout=10)
    assert Study.objects.count() == 0
    # The aborted association's reader ends: aborting from inside its own handler used to
    # wait on itself for ever, and a process that had refused a film could never exit.
    assert wait_until(lambda: not _dul_threads(), timeout=10), _dul_threads()


def _dul_threads() -> list[threading.Thread]:
    from pynetdicom.dul import DULServiceProvider

    return [t for t in threading.enumerate() if isinstance(t, DULServiceProvider) and t.is_alive()]


def test_a_film_just_past_the_limit_is_refused_out_of_resources_and_not_read(
    start_listener, received_here
):
    """Within the abort margin: the film arrives (on disk), and is refused with A700 and a
    reason, without being read or stored; its temporary file is gone."""
    listener = start_listener(max_bytes=20 * 1024)
    status = pynetdicom_store(listener.port, films.film(width=256))
    assert status.Status == 0xA700
    assert "larger than" in status.ErrorComment
    assert not list(received_here.iterdir())
    assert Study.objects.count() == 0
    (refused,) = _instances("refused")
    assert "aborted" not in refused["reason"]


def test_a_film_within_the_limit_is_received_through_a_file_and_stored(
    start_listener, received_here
):
    listener = start_listener(max_bytes=10 * 1024 * 1024)
    status = pynetdicom_store(listener.port, films.film(width=256))
    assert status.Status == 0x0000
    assert Study.objects.count() == 1
    assert not list(received_here.iterdir())
