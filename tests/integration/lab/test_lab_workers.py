"""Several bridge processes: connections spread evenly, and nothing outlives the parent."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.db.lab_models import LabRawMessage
from hub.db.session import session_scope
from tests.conftest import free_port, make_database
from tests.helpers import wait_for

from .conftest import SyncMllp, msa, start_bridge_process
from .test_lab_bad_input import oru


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from make_database("postgresql", tmp_path)


def _handed_to(log: Path) -> Counter[str]:
    return Counter(re.findall(r"to worker (\d+) \(", log.read_text()))


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        out += [int(x) for x in (task / "children").read_text().split()]
    return out


def test_connections_are_spread_over_workers_and_die_with_the_parent(pg_url: str,
                                                                      tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "bridge.log"
    proc = start_bridge_process(pg_url, port, log, "--workers", "2", "--log-level", "debug")

    def spawned_workers() -> list[int]:
        found = []
        for p in _children(proc.pid):
            with contextlib.suppress(FileNotFoundError):
                if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes():
                    found.append(p)
        return found

    # The parent listens before its workers have started: they appear a moment later.
    workers = wait_for(lambda: len(spawned_workers()) == 2 and spawned_workers(), timeout=30)
    try:
        wait_for(lambda: sum(_handed_to(log).values()) == 1, timeout=10)  # the start-up probe
        clients = [SyncMllp(port) for _ in range(8)]
        for round_ in range(3):
            for n, client in enumerate(clients):
                ack = client.send(oru(f"W{n}-{round_}"))
                assert msa(ack)[1] == "AA", ack
        # The probe closed at once, so the eight went four and four.
        handed = _handed_to(log)
        assert sum(handed.values()) == 9 and sorted(handed.values()) in ([4, 5], [5, 4])
        for client in clients:
            client.close()
        with session_scope(pg_url) as s:
            assert s.scalar(select(func.count()).select_from(LabRawMessage)) == 24

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # The workers see the dispatcher's end of their channel close, finish and exit.
        wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in workers), timeout=30)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in workers:
            if Path(f"/proc/{p}").exists():
                os.kill(p, signal.SIGKILL)
