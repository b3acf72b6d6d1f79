"""The Orthanc test peer itself works: C-ECHO, C-STORE, STOW-RS, a restart on the same
ports, and Lua routing to a Storage SCP. These check the peer, not xrayweb, so that a
failing xrayweb network test can be trusted to be about xrayweb."""

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pynetdicom import AE, StoragePresentationContexts, evt

from tests.xrayweb.dicom_corpus import dataset, to_bytes
from tests.xrayweb.dicomnet.peers import (
    FORWARD_LUA,
    NO_FORWARD_LUA,
    Orthanc,
    free_port,
    tool,
    wait_until,
)


def film(tmp_path: Path, name: str = "film.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(to_bytes(dataset(np.full((64, 64), 100, np.uint8), bits=12)))
    return path


def echo(orthanc: Orthanc) -> subprocess.CompletedProcess:
    command = [tool("echoscu"), "-to", "5", "-aec", orthanc.aet, "127.0.0.1"]
    return subprocess.run(
        [*command, str(orthanc.dicom_port)], capture_output=True, text=True, timeout=30
    )


def store(orthanc: Orthanc, path: Path, *, calling_aet: str = "STORESCU") -> None:
    command = [tool("storescu"), "-aet", calling_aet, "-aec", orthanc.aet, "127.0.0.1"]
    result = subprocess.run(
        [*command, str(orthanc.dicom_port), str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


def test_orthanc_answers_c_echo(orthanc):
    result = echo(orthanc)

    assert result.returncode == 0, result.stderr + orthanc.log_tail()


def test_c_store_by_storescu_is_found_by_sop_instance_uid(orthanc_clean, tmp_path):
    path = film(tmp_path)
    sop_uid = pydicom.dcmread(path).SOPInstanceUID

    store(orthanc_clean, path)

    [found] = orthanc_clean.find_instances(SOPInstanceUID=sop_uid)
    assert orthanc_clean.instance_tags(found["ID"])["SOPInstanceUID"] == sop_uid
    assert orthanc_clean.instances() == [found["ID"]]


# dicomweb-client streams a body larger than chunk_size (default 10**6 bytes) with
# Transfer-Encoding: chunked and sends a smaller one with a Content-Length: the 64 x 64 film
# goes whole by default and in chunks at chunk_size=1024.
@pytest.mark.parametrize("chunk_size", [10**6, 1024], ids=["content-length", "chunked"])
def test_stow_rs_stores_into_orthanc(orthanc_clean, tmp_path, chunk_size):
    ds = pydicom.dcmread(film(tmp_path))
    client = DICOMwebClient(url=orthanc_clean.url + "/dicom-web", chunk_size=chunk_size)

    client.store_instances([ds])

    assert len(orthanc_clean.find_instances(SOPInstanceUID=ds.SOPInstanceUID)) == 1


def test_restart_brings_the_peer_back_on_the_same_ports(orthanc):
    ports = (orthanc.dicom_port, orthanc.http_port)
    try:
        orthanc.stop()
        assert not orthanc.running
        assert echo(orthanc).returncode != 0

        orthanc.start()

        assert orthanc.running
        assert (orthanc.dicom_port, orthanc.http_port) == ports
        assert echo(orthanc).returncode == 0
    finally:
        orthanc.start()


class StorageScp:
    """A pynetdicom Storage SCP that keeps the SOPInstanceUID of everything it receives."""

    def __init__(self, *, aet: str) -> None:
        self.aet = aet
        self.port = free_port()
        self.received: list[str] = []
        ae = AE(ae_title=aet)
        ae.supported_contexts = StoragePresentationContexts
        self._server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )

    def _on_store(self, event) -> int:
        self.received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    def shutdown(self) -> None:
        self._server.shutdown()


@pytest.fixture
def xrayweb_scp():
    scp = StorageScp(aet="XRAYWEB")
    yield scp
    scp.shutdown()


def test_forward_lua_routes_new_instances_but_not_those_from_the_target(
    orthanc_clean, xrayweb_scp, tmp_path
):
    orthanc = orthanc_clean
    orthanc.add_modality("xrayweb", aet="XRAYWEB", host="127.0.0.1", port=xrayweb_scp.port)
    try:
        orthanc.execute_lua(FORWARD_LUA.format(modality="xrayweb", aet="XRAYWEB"))
        from_xrayweb = film(tmp_path, "from-xrayweb.dcm")
        store(orthanc, from_xrayweb, calling_aet="XRAYWEB")
        uploaded = film(tmp_path, "uploaded.dcm")

        orthanc.upload(uploaded.read_bytes())

        # Lua callbacks run one after another, so once the upload has been forwarded the
        # instance from XRAYWEB has been passed over, not merely delayed.
        expected = [pydicom.dcmread(uploaded).SOPInstanceUID]
        arrived = wait_until(lambda: xrayweb_scp.received, timeout=20)
        assert arrived, orthanc.log_tail()
        assert xrayweb_scp.received == expected
        assert len(orthanc.instances()) == 2
    finally:
        orthanc.execute_lua(NO_FORWARD_LUA)
        orthanc.remove_modality("xrayweb")
