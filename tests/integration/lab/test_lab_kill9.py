"""Fault test: kill -9 the bridge during a burst; a re-sending sender; every message once."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.db.lab_models import LabRawMessage, LabResultSet
from hub.db.models import WorklistItem
from hub.db.session import session_scope
from lis_bridge.mllp import FrameDecoder, frame
from tests.conftest import free_port, make_database

from .conftest import start_bridge_process
from .test_lab_bad_input import oru

TOTAL = 1000
SENDERS = 4


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from make_database("postgresql", tmp_path)


def _sender(port: int, ids: list[str], acked: dict[str, str], stop: threading.Event) -> None:
    """Sends each message until it is ACKed; reconnects and re-sends after any failure."""
    sock = None
    decoder = FrameDecoder(1 << 20)
    i = 0
    while i < len(ids) and not stop.is_set():
        cid = ids[i]
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                decoder = FrameDecoder(1 << 20)
            sock.sendall(frame(oru(cid)))
            frames: list[bytes] = []
            while not frames:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                frames = [f for f in decoder.feed(data) if isinstance(f, bytes)]
            code = frames[0].split(b"\rMSA|")[1].split(b"|")[0].decode()
            acked[cid] = code
            i += 1
        except OSError:
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.05)  # the bridge is down: retry the same message
    if sock is not None:
        sock.close()


def test_kill_9_during_burst_loses_and_duplicates_nothing(pg_url: str, tmp_path: Path):
    port = free_port()
    log = tmp_path / "bridge.log"
    proc = start_bridge_process(pg_url, port, log)
    ids = [f"K9-{n:05d}" for n in range(TOTAL)]
    acked: dict[str, str] = {}
    stop = threading.Event()
    threads = [threading.Thread(target=_sender, args=(port, ids[k::SENDERS], acked, stop))
               for k in range(SENDERS)]
    try:
        for t in threads:
            t.start()
        # Kill once a good part of the burst is in, while it is still flowing.
        deadline = time.time() + 60
        while len(acked) < TOTAL // 3 and time.time() < deadline:
            time.sleep(0.01)
        assert len(acked) < TOTAL, "burst finished before the kill; make it bigger"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = len(acked)
        time.sleep(0.5)
        proc = start_bridge_process(pg_url, port, log)
        for t in threads:
            t.join(120)
        assert all(not t.is_alive() for t in threads)
    finally:
        stop.set()
        proc.kill()
        proc.wait(10)

    assert 0 < killed_at < TOTAL
    assert len(acked) == TOTAL and set(acked.values()) == {"AA"}
    with session_scope(pg_url) as s:
        per_id = dict(s.execute(
            select(LabRawMessage.control_id, func.count()).group_by(LabRawMessage.control_id)
        ).all())
        assert set(per_id) == set(ids) and set(per_id.values()) == {1}
        assert s.scalar(select(func.count()).select_from(LabResultSet)) == TOTAL
        assert s.scalar(select(func.count()).select_from(WorklistItem)) == TOTAL
