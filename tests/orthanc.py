"""A real Orthanc PACS for the tests: Debian's ``/usr/sbin/Orthanc`` with the DICOMweb plugin.

:class:`Orthanc` writes its own JSON configuration into a temporary folder (HTTP on a free
port of 127.0.0.1, no DICOM port, storage in that folder, authentication on with one
registered user), starts the server as a child process (no systemd), waits until its
REST API answers, uploads DICOM files (``upload``), and stops it (``stop``, also on
garbage collection of a test session: the fixtures call it at teardown). Tests that need
it skip with a reason when Orthanc or its plugin is not installed (:func:`require_orthanc`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "radiologist", "s3cret-Pa55"


def require_orthanc() -> None:
    """Skip the calling test (or module) when Orthanc or its DICOMweb plugin is absent."""
    for path, package in ((ORTHANC, "orthanc"), (DICOMWEB_PLUGIN, "orthanc-dicomweb")):
        if not path.exists():
            pytest.skip(f"{path} not found: install Debian's {package} package "
                        "(apt-get install orthanc orthanc-dicomweb) to run the PACS tests")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc server on 127.0.0.1 with its own configuration and storage.

    ``url`` is the DICOMweb root (``http://127.0.0.1:<port>/dicom-web``) and ``rest``
    Orthanc's REST root; ``auth`` the registered user's (user, password).
    """

    def __init__(self, folder=None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="orthanc-"))
        self.port = free_port()
        self.rest = f"http://127.0.0.1:{self.port}"
        self.url = self.rest + "/dicom-web"
        self.auth = (USER, PASSWORD)
        self.process = None
        self.log = self.folder / "orthanc.log"

    def config(self) -> dict:
        return {
            "Name": "radipop-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "StorageCompression": False,
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "DicomServerEnabled": False,
            "DicomPort": free_port(),
            "HttpThreadsCount": 8,
            "SaveJobs": False,
            "OverwriteInstances": True,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }

    def start(self, timeout: float = 30.0) -> Orthanc:
        """Start the server and wait until its REST API answers."""
        require_orthanc()
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=1))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([str(ORTHANC), str(config)], stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}:\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            try:
                if requests.get(self.rest + "/system", auth=self.auth, timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Stop the server (terminate, then kill) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ data
    def upload(self, paths) -> list[dict]:
        """POST each DICOM file to ``/instances``; returns Orthanc's answers. A file the
        server refuses raises ``requests.HTTPError`` (its message says Orthanc's reason)."""
        answers = []
        with requests.Session() as http:
            http.auth = self.auth
            for path in _files(paths):
                answer = http.post(self.rest + "/instances", data=Path(path).read_bytes(),
                                   headers={"Content-Type": "application/dicom"}, timeout=30)
                if not answer.ok:
                    raise requests.HTTPError(f"Orthanc refused {path}: {answer.status_code} "
                                             f"{answer.text[:300]}", response=answer)
                answers.append(answer.json())
        return answers

    def series_uids(self) -> set[str]:
        """SeriesInstanceUID of every series stored."""
        answer = requests.post(self.rest + "/tools/find", auth=self.auth, timeout=10,
                               json={"Level": "Series", "Query": {}, "Expand": True})
        answer.raise_for_status()
        return {s["MainDicomTags"]["SeriesInstanceUID"] for s in answer.json()}

    def delete_series(self, series_uid: str) -> None:
        """Remove one series from the server."""
        found = requests.post(self.rest + "/tools/lookup", data=series_uid, auth=self.auth,
                              timeout=10).json()
        for item in found:
            if item["Type"] == "Series":
                requests.delete(self.rest + item["Path"], auth=self.auth,
                                timeout=10).raise_for_status()


def _files(paths):
    for path in paths if not isinstance(paths, (str, os.PathLike)) else [paths]:
        path = Path(path)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path
