from collections.abc import Iterator

import pytest

from tests.xrayweb.dicomnet.peers import Orthanc


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Iterator[Orthanc]:
    """One real Orthanc PACS for the whole session (it starts in well under a second, but
    takes 1-4 s to stop). Tests that leave state behind them (Lua callbacks, modalities)
    undo it themselves; stored instances are cleared by ``orthanc_clean``."""
    peer = Orthanc(tmp_path_factory.mktemp("orthanc"))
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def orthanc_clean(orthanc: Orthanc) -> Orthanc:
    """The session's Orthanc, running (a test may have stopped it) and storing nothing."""
    orthanc.start()
    orthanc.clear()
    return orthanc
