"""Small helpers shared by tests (no fixtures here)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pydicom

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.2,
             what: str = "condition") -> T:
    """Poll until ``predicate()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_study(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.rglob("*.dcm"))]


class HisListener:
    """A branch HIS on a real TCP socket: reads MLLP frames, answers AA with the MSH-10."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.messages: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\x1c\r" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if b"\x1c\r" not in buf:
                    continue
                message = buf[buf.index(b"\x0b") + 1:buf.index(b"\x1c\r")].decode("utf-8")
                self.messages.append(message)
                control_id = message.split("\r")[0].split("|")[9]
                ack = (f"MSH|^~\\&|HIS|BR01|YIGONG-LIS|YIGONG|20261126090000||ACK^R01^ACK|"
                       f"A{control_id}|P|2.5.1\rMSA|AA|{control_id}\r")
                conn.sendall(b"\x0b" + ack.encode() + b"\x1c\r")

    def close(self) -> None:
        self.sock.close()


def sign_and_deliver_setup(server: Any) -> tuple[HisListener, Any, list[bytes]]:
    """Make a running hub able to sign (a CA, keys for dr.li and dr.zhao) and to deliver to a
    HIS listener for BR01. Returns the listener, the LIS settings and the CA's trust roots."""
    from hub.clock import utcnow
    from hub.db.session import session_scope
    from hub.reports import ca
    from lis_bridge.config import LisSettings
    from tests.conftest import free_port

    his = HisListener()
    lis = LisSettings(his_endpoints={"BR01": f"127.0.0.1:{his.port}"}, outbound_timeout=10,
                      port=free_port())
    server.app.state.lis_settings = lis
    phrase = ca.key_passphrase(server.settings.resolved_secret_key())
    with session_scope(server.db_url) as s:
        ca.init_ca(s, phrase, utcnow())
        for user in ("dr.li", "dr.zhao"):
            ca.issue(s, user, phrase, utcnow())
        roots = ca.trust_roots(s)
    return his, lis, roots
