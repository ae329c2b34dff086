"""Helpers for the browser tests: the hub handle, test data senders, login, canvas pixels."""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.conftest import DEMO_PASSWORD, REPO, HubServer
from tests.helpers import wait_for

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


@dataclass
class E2EHub:
    """A running hub plus what the tests need to feed it."""

    server: HubServer
    orthanc: object
    _tokens: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, username: str) -> dict[str, str]:
        with self._lock:
            if username not in self._tokens:
                self._tokens[username] = self.server.token(username)
            return {"Authorization": f"Bearer {self._tokens[username]}"}

    def get(self, path: str, username: str = "admin", **kw) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers(username), timeout=30, **kw)

    def has_route(self, path: str, method: str = "get") -> bool:
        paths = requests.get(self.url + "/openapi.json", timeout=10).json()["paths"]
        return method in paths.get(path, {})

    def require_route(self, path: str, method: str = "get", part: str = "") -> None:
        """Skip the calling test, naming the route, when the hub does not serve it yet."""
        if not self.has_route(path, method):
            pytest.skip(f"{method.upper()} {path} is not in the hub's OpenAPI document yet"
                        f"{f' ({part})' if part else ''}; this test runs once it lands")

    def wait_item(self, kind: str, patient_local_id: str, username: str = "admin",
                  status: tuple[str, ...] = ("ready",), timeout: float = 60) -> dict:
        def find() -> dict | None:
            rows = self.get(f"/api/worklist?kind={kind}&limit=500", username).json()
            for row in rows:
                if row["patient"]["local_id"] == patient_local_id and row["status"] in status:
                    return row
            return None

        return wait_for(find, timeout=timeout, what=f"{kind} item of {patient_local_id}")


def dicom_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def send_ct(hub: E2EHub, slices: int = 30, size: int = 256, patient_id: str = "BR01-E2E-1",
            name: str = "Wang^XiaoDong=王^小东", bad_instance: bool = False) -> list:
    """C-STORE a synthetic CT from the BR01 CT's AE title; optionally add one undecodable image.

    The bad image claims JPEG 2000 with a fragment that is not a codestream: the archive stores it,
    the browser's decoder refuses it.
    """
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, generate_uid

    from hub.demo import synthetic_ct
    from hub.demo.run import send_datasets

    datasets = synthetic_ct(slices, size, name=name, patient_id=patient_id)
    stored = send_datasets(datasets, hub.orthanc.config.dicom_port, hub.orthanc.config.aet,
                           "BR01-CT")
    assert stored == len(datasets)
    if bad_instance:
        bad = datasets[-1].copy()
        bad.file_meta = datasets[-1].file_meta.copy()
        sop = generate_uid()
        bad.SOPInstanceUID = bad.file_meta.MediaStorageSOPInstanceUID = sop
        bad.InstanceNumber = slices + 1
        bad.file_meta.TransferSyntaxUID = JPEG2000Lossless
        bad.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00garbage-not-j2k" * 64])
        bad["PixelData"].VR = "OB"
        from hub.orthanc.client import OrthancClient

        client = OrthancClient(hub.orthanc.config.url, hub.orthanc.config.user,
                               hub.orthanc.config.password)
        client.upload(dicom_bytes(bad))
        datasets.append(bad)
    return datasets


class Shots:
    """Numbered screenshots of one test under test-artifacts/screenshots/."""

    def __init__(self, page, test_name: str) -> None:
        self.page = page
        self.prefix = re.sub(r"[^A-Za-z0-9_]+", "_", test_name)
        self.n = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob(f"{self.prefix}__*.png"):  # an earlier run's steps
            old.unlink()

    def __call__(self, step: str) -> Path:
        self.n += 1
        path = SCREENSHOTS / f"{self.prefix}__{self.n:02d}_{step}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


def login(page, username: str, password: str = DEMO_PASSWORD) -> None:
    """Open the viewer and sign in through its form."""
    page.goto("/")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("worklist-body").wait_for()


def open_item(page, item_id: int) -> None:
    row = page.locator(f'[data-testid="worklist-row"][data-item-id="{item_id}"]')
    row.wait_for()
    row.get_by_test_id("open-item").click()
    page.get_by_test_id("item-head").wait_for()


CANVAS_STATS_JS = """
(sel) => {
  const c = document.querySelector(sel + ' canvas.cornerstone-canvas')
         || document.querySelector(sel + ' canvas');
  if (!c) return null;
  const ctx = c.getContext('2d');
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, nonBlack = 0, hash = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = d[i] + d[i + 1] + d[i + 2];
    sum += v; if (v > 30) nonBlack++;
    hash = (hash * 31 + d[i]) | 0;
  }
  const n = d.length / 4;
  return {width: c.width, height: c.height, mean: sum / (3 * n), nonBlack: nonBlack / n, hash};
}
"""


def canvas_stats(page, selector: str = '[data-testid="viewport-main"]') -> dict | None:
    return page.evaluate(CANVAS_STATS_JS, selector)
