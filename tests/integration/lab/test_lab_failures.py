"""Failures inside the bridge: one bad frame does not harm its batch; no database, no ACK."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from hub.db.lab_models import LabRawMessage
from hub.db.session import session_scope
from lis_bridge import server
from tests.conftest import PG_ADMIN_URL, make_database

from .conftest import SyncMllp, err, msa, start_bridge
from .test_lab_bad_input import oru


def test_unexpected_error_answers_ae_207_and_spares_the_rest_of_the_batch(
        db_url: str, monkeypatch: pytest.MonkeyPatch):
    real_batch, real_one = server.record_batch, server.record_message

    def explode_if_boom(inbound) -> None:  # noqa: ANN001
        if inbound.control_id == "BOOM":
            raise RuntimeError("simulated bug")

    def batch(session, inbounds, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        for i in inbounds:
            explode_if_boom(i)
        return real_batch(session, inbounds, *a, **kw)

    def one(session, inbound, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        explode_if_boom(inbound)
        return real_one(session, inbound, *a, **kw)

    monkeypatch.setattr(server, "record_batch", batch)
    monkeypatch.setattr(server, "record_message", one)
    # A long commit window so that the three frames below share one batch.
    running, stop = start_bridge(db_url, commit_window_ms=300.0, commit_threads=1)
    try:
        acks: dict[str, bytes] = {}

        def send(cid: str) -> None:
            c = SyncMllp(running.port)
            acks[cid] = c.send(oru(cid))
            c.close()

        threads = [threading.Thread(target=send, args=(cid,)) for cid in ("OK-A", "BOOM", "OK-B")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        stop()
    assert msa(acks["OK-A"])[1] == "AA" and msa(acks["OK-B"])[1] == "AA"
    assert msa(acks["BOOM"])[1:3] == ["AE", "BOOM"] and "207^" in err(acks["BOOM"])
    with session_scope(db_url) as s:
        rows = {r.control_id: r for r in s.scalars(select(LabRawMessage))}
    assert set(rows) == {"OK-A", "OK-B", None}
    assert rows[None].ack_code == "AE" and "internal error" in rows[None].error_text


def test_no_database_means_no_ack(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'hub.sqlite3'}"
    running, stop = start_bridge(url)
    try:
        c = SyncMllp(running.port, timeout=10)
        with pytest.raises(ConnectionError):
            c.send(oru("NO-DB-1"))
        c.close()
    finally:
        stop()


def test_same_message_on_two_connections_in_one_batch_is_stored_once(db_url: str):
    running, stop = start_bridge(db_url, commit_window_ms=300.0, commit_threads=1)
    try:
        acks: list[bytes] = []

        def send() -> None:
            c = SyncMllp(running.port)
            acks.append(c.send(oru("TWICE-1")))
            c.close()

        threads = [threading.Thread(target=send) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        stop()
    assert len(acks) == 2 and acks[0] == acks[1] and msa(acks[0])[1] == "AA"
    with session_scope(db_url) as s:
        assert len(s.scalars(select(LabRawMessage)).all()) == 1


def test_a_broken_database_connection_is_replaced(tmp_path: Path):
    """The committer keeps its connection; when it breaks, the frame on it gets no ACK, and the
    sender's re-send is recorded on a new connection."""
    databases = make_database("postgresql", tmp_path)
    url = next(databases)
    running, stop = start_bridge(url)
    try:
        c = SyncMllp(running.port, timeout=10)
        assert msa(c.send(oru("HELD-1")))[1] == "AA"
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                   " WHERE datname = %s AND pid <> pg_backend_pid()",
                                   (name,)).fetchone()[0]
        assert killed >= 1
        with pytest.raises(ConnectionError):
            c.send(oru("HELD-2"))
        c.close()
        c = SyncMllp(running.port, timeout=10)
        assert msa(c.send(oru("HELD-2")))[1] == "AA"
        c.close()
    finally:
        stop()
        with session_scope(url) as s:
            stored = s.scalars(select(LabRawMessage.control_id)).all()
        next(databases, None)
    assert sorted(stored) == ["HELD-1", "HELD-2"]
