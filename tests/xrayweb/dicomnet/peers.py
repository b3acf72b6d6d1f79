"""Real DICOM peers for the network tests: an Orthanc PACS run as a plain process, and the
DCMTK tools. A missing peer fails the test that needs it, never skips it: a skipped DICOM
test looks like a passing one in CI."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL_HINT = (
    "`make test` installs the DICOM peers: orthanc, orthanc-dicomweb, dcmtk and dicom3tools "
    "(apt-get install orthanc orthanc-dicomweb dcmtk dicom3tools)"
)

# The "Connect your PACS" example: an Orthanc Lua script that sends every instance it stores
# on to xrayweb's Storage SCP, declared in Orthanc as the modality {modality} with AE title
# {aet}. What xrayweb itself sends to Orthanc over DICOM (its SR and secondary-capture
# results) is not sent back, or each result would come back to xrayweb and go round again.
FORWARD_LUA = """\
function OnStoredInstance(instanceId, tags, metadata, origin)
  -- origin tells who sent the instance: C-STORE ("DicomProtocol", with RemoteAet and
  -- CalledAet), the REST API ("RestApi"), a plugin such as DICOMweb ("Plugins") or Lua.
  if origin["RequestOrigin"] == "DicomProtocol" and origin["RemoteAet"] == "{aet}" then
    return
  end
  SendToModality(instanceId, "{modality}")
end
"""
# Defining the callback again replaces it: this one turns forwarding off.
NO_FORWARD_LUA = "function OnStoredInstance(instanceId, tags, metadata, origin) end\n"


def tool(name: str) -> str:
    """The path of an installed program, or a failed test that says how to install it."""
    # Orthanc lives in /usr/sbin, which is not on every user's PATH.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    path = shutil.which(name, path=search)
    if path is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}", pytrace=False)
    return path


def free_port() -> int:
    """A TCP port free on loopback now. Another process may take it before the caller binds
    it; on a test machine that race is rare enough to accept."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def process_end(process: subprocess.Popen, *, timeout: float = 10) -> None:
    """Stop a peer process: SIGTERM, then SIGKILL if it has not ended within ``timeout``."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Orthanc:
    """One Orthanc process with its own configuration, storage and log under ``workdir``.

    Its ports are chosen once, so ``restart()`` brings back the same peer: a PACS that was
    down and is up again. Orthanc 1.10 listens for DICOM on every interface (0.0.0.0), and
    for HTTP too; "RemoteAccessAllowed": false only makes it refuse HTTP requests from other
    hosts. Both are acceptable for a short-lived test peer on this machine."""

    def __init__(
        self,
        workdir: Path,
        aet: str = "ORTHANC",
        *,
        lua_scripts: Sequence[Path] = (),
        modalities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.aet = aet
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self._process: subprocess.Popen | None = None
        self._http = requests.Session()
        config = self._config(lua_scripts=lua_scripts, modalities=modalities or {})
        self.config_path.write_text(json.dumps(config, indent=2))

    def _config(
        self, *, lua_scripts: Sequence[Path], modalities: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        return {
            "Name": f"xrayweb-test-{self.aet}",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "StorageCompression": False,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomModalities": {name: dict(entry) for name, entry in modalities.items()},
            # Lets a test define the Lua callbacks at run time (execute_lua).
            "ExecuteLuaEnabled": True,
            "LuaScripts": [str(path) for path in lua_scripts],
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            # OnStableStudy after one quiet second instead of a minute.
            "StableAge": 1,
        }

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 30) -> None:
        """Start Orthanc and return once its REST API answers."""
        if self.running:
            return
        binary = tool("Orthanc")
        if not DICOMWEB_PLUGIN.exists():
            pytest.fail(f"{DICOMWEB_PLUGIN} is missing: {INSTALL_HINT}", pytrace=False)
        # --verbose: the log is what a failing test shows (log_tail), so let it say enough.
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "--verbose", str(self.config_path)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        answered = wait_until(self._answers, timeout=timeout, interval=0.05)
        exited = self._process.poll()
        if not answered or exited is not None:
            self.stop()
            state = f"exited with {exited}" if exited is not None else f"silent for {timeout} s"
            pytest.fail(
                f"Orthanc on HTTP {self.http_port} / DICOM {self.dicom_port} {state}; "
                f"log tail:\n{self.log_tail()}",
                pytrace=False,
            )

    def _answers(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            return True  # it died: stop waiting, start() reports it
        try:
            return self._http.get(self.url + "/system", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self, *, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if Orthanc has not finished its shutdown in ``timeout`` s."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop, then start on the same ports with the same storage."""
        self.stop()
        self.start()

    def log_tail(self, n: int = 50) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self._http.request(method, self.url + path, timeout=30, **kwargs)
        if not response.ok:
            # Orthanc explains a refusal in the body; raise_for_status alone would drop it.
            raise requests.HTTPError(
                f"{method} {path}: {response.status_code} {response.text}", response=response
            )
        return response

    def get(self, path: str) -> Any:
        return self._request("GET", path).json()

    def instances(self) -> list[str]:
        return self.get("/instances")

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        return self.get(f"/instances/{orthanc_id}/simplified-tags")

    def find_instances(self, **dicom_keywords: str) -> list[dict[str, Any]]:
        """Stored instances matching the keywords, e.g. ``SOPInstanceUID=...``."""
        query = {"Level": "Instance", "Expand": True, "Query": dicom_keywords}
        return self._request("POST", "/tools/find", json=query).json()

    def upload(self, data: bytes) -> str:
        """Store a DICOM file through the REST API; its Orthanc id."""
        headers = {"Content-Type": "application/dicom"}
        return self._request("POST", "/instances", data=data, headers=headers).json()["ID"]

    def add_modality(self, name: str, *, aet: str, host: str, port: int) -> None:
        # Kept in memory only (DicomModalitiesInDatabase is false): gone after a restart.
        self._request("PUT", f"/modalities/{name}", json={"AET": aet, "Host": host, "Port": port})

    def remove_modality(self, name: str) -> None:
        self._request("DELETE", f"/modalities/{name}")

    def execute_lua(self, script: str) -> str:
        """Run Lua in the context Orthanc's callbacks run in, so a function defined here
        (OnStoredInstance, ...) replaces the callback of that name."""
        return self._request("POST", "/tools/execute-script", data=script.encode()).text

    def clear(self) -> None:
        """Delete everything stored; deleting a patient deletes its studies and instances."""
        for patient in self.get("/patients"):
            self._request("DELETE", f"/patients/{patient}")
