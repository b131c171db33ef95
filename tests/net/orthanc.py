"""A real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) for the network tests.

:class:`Orthanc` writes a configuration for one instance (loopback HTTP, DICOM on a free port,
a temporary storage folder, C-ECHO/STORE/FIND/GET/MOVE allowed, lumbarview's AE known as a move
destination, the DICOMweb plugin on ``/dicom-web/``), starts the binary itself (the packaged
service is never used), waits until ``/system`` answers and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC_AET = "ORTHANC"
#: The AE title lumbarview uses in the tests, known to Orthanc as a C-MOVE destination.
OUR_AET = "LUMBARVIEW"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.access("/usr/sbin/Orthanc", os.X_OK) else None)


class Orthanc:
    """One Orthanc process with its own configuration and storage under ``folder``."""

    def __init__(self, folder: Path, move_port: int, *, tls: dict[str, Any] | None = None,
                 move_host: str = "127.0.0.1") -> None:
        binary = orthanc_binary()
        if binary is None:
            raise FileNotFoundError("the Orthanc binary is not installed (bash packaging/dev.sh installs it)")
        self.binary = binary
        self.folder = folder
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.move_port = move_port
        self.aet = ORTHANC_AET
        folder.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "Name": "lumbarview-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "storage"),
            "StorageCompression": False,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomScpTimeout": 10,
            "DicomModalities": {"lumbarview": [OUR_AET, move_host, move_port]},
            "SaveJobs": False,
            "ConcurrentJobs": 2,
            "HttpThreadsCount": 8,
            "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
        }
        if tls:
            config.update(tls)
        self.config_path = folder / "orthanc.json"
        self.config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self.log_path = folder / "orthanc.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_root(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_root(self) -> str:
        return f"{self.http_root}/dicom-web"

    def start(self, timeout_s: float = 15.0, check_http: bool = True) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 (kept open for the process's life)
        self.process = subprocess.Popen([self.binary, str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.folder, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode} at start; its log:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            with contextlib.suppress(OSError, urllib.error.URLError):
                if check_http:
                    self.get_json("/system")
                if self._dicom_listening() and (check_http or self._http_listening()):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s; its log:\n"
                           + self.log_path.read_text(errors="replace")[-3000:])

    def _dicom_listening(self) -> bool:
        return self._listening(self.dicom_port)

    def _http_listening(self) -> bool:
        return self._listening(self.http_port)

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:  # a temporary instance: no need to wait for its DICOM threads' timeouts
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    # -- its REST API, for checking what it holds ------------------------------------------------
    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.http_root + path, timeout=5) as r:
            return json.loads(r.read())

    def post(self, path: str, body: bytes) -> Any:
        req = urllib.request.Request(self.http_root + path, data=body, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def delete(self, path: str) -> None:
        req = urllib.request.Request(self.http_root + path, method="DELETE")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def upload(self, files: list[Path]) -> None:
        """Store ``files`` through the REST API (independent of the DIMSE code under test)."""
        for f in files:
            self.post("/instances", f.read_bytes())

    def clear(self) -> None:
        for patient in self.get_json("/patients"):
            self.delete(f"/patients/{patient}")
