"""Fixtures for the lab HL7 bridge: an in-process bridge on a free loopback port, a sync client."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.config import Settings
from hub.intake import IntakeRules
from lis_bridge.config import LisSettings
from lis_bridge.mllp import FrameDecoder, frame
from lis_bridge.server import LisBridge

REPO = Path(__file__).resolve().parents[3]


@dataclass
class RunningBridge:
    port: int
    url: str
    bridge: LisBridge


def start_bridge_process(url: str, port: int, log: Path, *args: str) -> subprocess.Popen:
    """``python -m lis_bridge`` as a real process on ``port``; returns once it accepts."""
    env = {**os.environ, "YIGONG_DATABASE_URL": url, "YIGONG_LIS_PORT": str(port),
           "YIGONG_LIS_HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "lis_bridge", "--no-migrate", *args],
                            cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"bridge did not start: {log.read_text()[-2000:]}")


def start_bridge(url: str, **overrides: object) -> tuple[RunningBridge, callable]:
    """Run a LisBridge on its own event loop thread; returns it and a stop function."""
    settings = LisSettings(**{"port": 0, "commit_window_ms": 1.0, **overrides})
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        bridge = LisBridge(settings, url, IntakeRules.from_settings(Settings()))
        holder["bridge"] = bridge
        holder["port"] = loop.run_until_complete(bridge.start("127.0.0.1", 0))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(bridge.close())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "bridge did not start"

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)

    return RunningBridge(holder["port"], url, holder["bridge"]), stop  # type: ignore[arg-type]


@pytest.fixture
def bridge(db_url: str) -> Iterator[RunningBridge]:
    running, stop = start_bridge(db_url)
    yield running
    stop()


class SyncMllp:
    """Blocking MLLP client for tests: send bytes, get the reply frame."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = FrameDecoder(64 * 1024 * 1024)
        self.pending: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> bytes:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.pending.extend(x for x in self.decoder.feed(data) if isinstance(x, bytes))
        return self.pending.pop(0)

    def send(self, message: bytes) -> bytes:
        self.sock.sendall(frame(message))
        return self.receive()

    def close(self) -> None:
        self.sock.close()


def msa(ack: bytes, codec: str = "ascii") -> list[str]:
    """MSA fields of an ACK."""
    for seg in ack.decode(codec).split("\r"):
        if seg.startswith("MSA"):
            return seg.split("|")
    raise AssertionError(f"no MSA in {ack!r}")


def err(ack: bytes) -> str:
    for seg in ack.decode("latin-1").split("\r"):
        if seg.startswith("ERR"):
            return seg
    return ""
