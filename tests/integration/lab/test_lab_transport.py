"""Transport options: TLS, idle timeout; replay of stored messages."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.config import Settings
from hub.db.lab_models import LabRawMessage, LabResultSet
from hub.db.session import session_scope
from hub.intake import IntakeRules
from lis_bridge.config import LisSettings
from lis_bridge.mllp import FrameDecoder, frame
from lis_bridge.replay import replay_messages

from .conftest import SyncMllp, msa, start_bridge
from .test_lab_bad_input import oru


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl not usable here: {exc}")
    return crt, key


def test_tls_connection_gets_acks(sqlite_url: str, cert: tuple[Path, Path]):
    crt, key = cert
    running, stop = start_bridge(sqlite_url, tls_cert=crt, tls_key=key)
    try:
        ctx = ssl.create_default_context(cafile=str(crt))
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            decoder = FrameDecoder(1 << 20)
            replies: list[bytes] = []
            for cid in ("TLS-1", "TLS-2"):
                tls.sendall(frame(oru(cid)))
                while len(replies) < int(cid[-1]):
                    replies += [f for f in decoder.feed(tls.recv(65536)) if isinstance(f, bytes)]
        assert [msa(r)[1:3] for r in replies] == [["AA", "TLS-1"], ["AA", "TLS-2"]]
        # A plain-TCP client cannot talk to the TLS port.
        c = SyncMllp(running.port, timeout=5)
        with pytest.raises((ConnectionError, OSError)):
            c.send(oru("PLAIN-1"))
        c.close()
    finally:
        stop()


def test_idle_connection_is_closed(sqlite_url: str):
    running, stop = start_bridge(sqlite_url, idle_timeout=0.5)
    try:
        c = SyncMllp(running.port)
        assert msa(c.send(oru("IDLE-1")))[1] == "AA"
        time.sleep(1.5)
        assert c.sock.recv(10) == b""  # server closed it
        c.close()
    finally:
        stop()


def test_replay_applies_a_new_configuration_to_a_refused_message(db_url: str):
    running, stop = start_bridge(db_url)
    try:
        c = SyncMllp(running.port)
        assert msa(c.send(oru("REPLAY-1", processing="D")))[1] == "AR"
        c.close()
    finally:
        stop()
    intake = IntakeRules.from_settings(Settings())
    relaxed = LisSettings(processing_ids=["P", "T", "D"])
    assert replay_messages(db_url, relaxed, intake, ack_code="AR", dry_run=True)[0][1:] == \
        ("AR", "AA")
    with session_scope(db_url) as s:
        assert s.scalar(select(func.count()).select_from(LabResultSet)) == 0
    (rid, before, after), = replay_messages(db_url, relaxed, intake, ack_code="AR")
    assert (before, after) == ("AR", "AA")
    with session_scope(db_url) as s:
        assert s.scalar(select(func.count()).select_from(LabResultSet)) == 1
        rows = s.scalars(select(LabRawMessage).order_by(LabRawMessage.id)).all()
        assert [(r.ack_code, r.control_id) for r in rows] == [("AR", None), ("AA", "REPLAY-1")]
        assert rows[0].error_text == f"replayed as {rows[1].id}"


def test_replay_command_line(sqlite_url: str, monkeypatch: pytest.MonkeyPatch):
    from typer.testing import CliRunner

    from lis_bridge.cli import app

    running, stop = start_bridge(sqlite_url)
    try:
        c = SyncMllp(running.port)
        c.send(oru("CLI-1", version="2.9"))
        c.close()
    finally:
        stop()
    monkeypatch.setenv("YIGONG_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(app, ["replay", "--ack", "AR", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "AR\t->\tAR" in result.output and "1 message(s) would be replayed" in result.output
