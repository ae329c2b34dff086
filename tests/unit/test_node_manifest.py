"""Manifest publisher against a stub hub: token, 401 refresh, origin, manifest, retries."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from dicom_node.ledger import Ledger
from dicom_node.manifest import HubClient, ManifestPublisher
from dicom_node.spool import InstanceInfo


class StubHub:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.tokens_issued = 0
        self.valid_token = ""
        self.fail_manifest = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _reply(self, code: int, body: dict | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                if self.path == "/api/auth/token":
                    form = parse_qs(self._body().decode())
                    stub.calls.append(("POST", self.path, form))
                    stub.tokens_issued += 1
                    stub.valid_token = f"t{stub.tokens_issued}"
                    return self._reply(200, {"access_token": stub.valid_token,
                                             "token_type": "bearer"})
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def _handle(self, method: str) -> None:
                body = json.loads(self._body() or b"{}")
                if self.headers.get("Authorization") != f"Bearer {stub.valid_token}":
                    return self._reply(401, {"detail": "expired"})
                stub.calls.append((method, self.path, body))
                if self.path.endswith("/origin"):
                    return self._reply(204)
                if stub.fail_manifest:
                    return self._reply(503, {"detail": "down"})
                return self._reply(202, {"status": "ready", "missing": 0})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hub():
    stub = StubHub()
    yield stub
    stub.server.shutdown()


def _ledger(tmp_path) -> Ledger:
    led = Ledger(tmp_path / "l.db")
    for sop, series in (("1", "9.1"), ("2", "9.1"), ("3", "9.2")):
        led.record_received(InstanceInfo(sop, "c", "9", series, "t", calling_aet="CT1"), now=100)
        led.record_forwarded(sop, now=101)
    return led


def test_origin_then_manifest_with_series_and_instances(hub, tmp_path):
    led = _ledger(tmp_path)
    pub = ManifestPublisher(led, HubClient(hub.url, "node.br01", "pw"), "BR01", quiet_seconds=5)
    assert pub.run_once(now=200) == 1
    token_call, origin, manifest = hub.calls
    assert token_call[2] == {"username": ["node.br01"], "password": ["pw"]}
    assert origin == ("PUT", "/api/studies/9/origin",
                      {"institution_code": "BR01", "source_aet": "CT1"})
    assert manifest == ("POST", "/api/studies/9/manifest", {
        "institution_code": "BR01", "source_aet": "CT1",
        "series": {"9.1": ["1", "2"], "9.2": ["3"]}})
    assert pub.run_once(now=300) == 0  # nothing new: no second manifest


def test_expired_token_is_renewed_once(hub, tmp_path):
    led = _ledger(tmp_path)
    client = HubClient(hub.url, "node.br01", "pw")
    client._token = "stale"
    pub = ManifestPublisher(led, client, "BR01", quiet_seconds=5)
    assert pub.run_once(now=200) == 1
    assert hub.tokens_issued == 1


def test_failed_manifest_stays_pending_and_is_retried(hub, tmp_path):
    led = _ledger(tmp_path)
    pub = ManifestPublisher(led, HubClient(hub.url, "u", "p"), "BR01", quiet_seconds=5)
    hub.fail_manifest = True
    assert pub.run_once(now=200) == 0
    assert led.status().studies_awaiting_manifest == 1
    assert "503" in led.status().last_error
    hub.fail_manifest = False
    assert pub.run_once(now=201) == 1
    assert led.status().studies_awaiting_manifest == 0


def test_unreachable_hub_keeps_everything_for_later(tmp_path):
    led = _ledger(tmp_path)
    pub = ManifestPublisher(led, HubClient("http://127.0.0.1:9", "u", "p", timeout=1), "BR01",
                            quiet_seconds=5)
    assert pub.run_once(now=200) == 0
    assert led.studies_needing_origin() == ["9"]
    assert led.status().studies_awaiting_manifest == 1
