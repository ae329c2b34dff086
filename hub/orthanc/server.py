"""Run the Debian Orthanc binary with a configuration generated into the data directory.

Used by ``yigong up`` and by the integration tests, so both start Orthanc the same way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

logger = logging.getLogger(__name__)


@dataclass
class OrthancConfig:
    root: Path
    http_port: int = 8042
    dicom_port: int = 4242
    aet: str = "YIGONG"
    user: str = "yigong"
    password: str = "yigong"
    stable_age: int = 10
    plugins_dir: str = "/usr/share/orthanc/plugins"
    binary: str = "/usr/sbin/Orthanc"
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def render(self) -> dict:
        plugins = [
            str(p) for p in Path(self.plugins_dir).glob("libOrthancDicomWeb.so*") if p.is_file()
        ][:1]
        return {
            "Name": "Yigong Hub archive",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "DicomCheckCalledAet": False,
            # Modalities and nodes at branches are many and change often; the hub checks the
            # institution from the sending AE title instead of refusing at association time.
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "UnknownSopClassAccepted": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.user: self.password},
            "StableAge": self.stable_age,
            "StorageCompression": False,
            "OverwriteInstances": False,
            "DefaultEncoding": "Utf8",
            "HttpServerEnabled": True,
            "KeepAlive": True,
            # Branch nodes forward with several associations each; Orthanc's default is 4.
            "DicomThreadsCount": 8,
            "TcpNoDelay": True,
            "Plugins": plugins,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
            "SaveJobs": False,
            "HttpTimeout": 30,
        }


class OrthancProcess:
    """A child Orthanc process; ``start()`` returns once its REST API answers."""

    def __init__(self, config: OrthancConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen | None = None

    def write_config(self) -> Path:
        root = self.config.root
        (root / "storage").mkdir(parents=True, exist_ok=True)
        (root / "index").mkdir(parents=True, exist_ok=True)
        path = root / "orthanc.json"
        path.write_text(json.dumps(self.config.render(), indent=2))
        return path

    def start(self, timeout: float = 30.0) -> None:
        if not Path(self.config.binary).exists():
            raise FileNotFoundError(
                f"Orthanc binary not found at {self.config.binary}; run scripts/install.sh"
            )
        cfg = self.write_config()
        log = open(self.config.root / "orthanc.log", "ab")  # noqa: SIM115 - child owns it
        env = dict(os.environ, TCP_NODELAY="1")
        self.proc = subprocess.Popen(
            [self.config.binary, "--logdir=" + str(self.config.root), str(cfg)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}; "
                                   f"see {self.config.root}/orthanc.log")
            try:
                r = requests.get(self.config.url + "/system", timeout=1,
                                 auth=(self.config.user, self.config.password))
                if r.status_code == 200:
                    logger.info("Orthanc %s up on %s", r.json().get("Version"), self.config.url)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"Orthanc did not answer on {self.config.url} within {timeout}s")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> OrthancProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
