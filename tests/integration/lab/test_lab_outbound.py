"""Results out: a real MLLP listener that refuses for a while, then accepts."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

from sqlalchemy import select

from hub.clock import utcnow
from hub.db.lab_models import LabOutbound, LabResultSet
from hub.db.models import DeadLetter
from hub.db.session import session_scope
from hub.services.lab import verify_result_set
from lis_bridge.acks import parse_ack
from lis_bridge.config import LisSettings
from lis_bridge.mllp import FrameDecoder, frame
from lis_bridge.outbound import deliver_due, queue_result
from tests.conftest import free_port

from .conftest import SyncMllp, start_bridge
from .test_lab_bad_input import oru


class HisListener:
    """A HIS stand-in: not listening at first, then answers every message, in MODE."""

    def __init__(self, port: int, mode: str = "AA") -> None:
        self.port = port
        self.mode = mode
        self.received: list[str] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self._sock:
            self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(5)
                decoder = FrameDecoder(1 << 22)
                try:
                    while True:
                        data = conn.recv(65536)
                        if not data:
                            break
                        for msg in decoder.feed(data):
                            text = msg.decode("utf-8")
                            msh = text.split("\r")[0].split("|")
                            self.received.append(text)
                            reply = (f"MSH|^~\\&|HIS|{msh[5]}|{msh[2]}|{msh[3]}|20261126||ACK|"
                                     f"A{len(self.received)}|P|2.5.1\rMSA|{self.mode}|{msh[9]}")
                            conn.sendall(frame(reply.encode()))
                except OSError:
                    pass


def _results(url: str, count: int) -> list[int]:
    """Send ``count`` results for one patient through the bridge; return their result set ids."""
    running, stop = start_bridge(url)
    try:
        c = SyncMllp(running.port)
        for n in range(count):
            raw = oru(f"OUT-{n}", value=f"4.{n}").replace(b"POUT-", b"PSAME-").replace(
                b"PID|1||PSAME-" + str(n).encode(), b"PID|1||PSAME")
            c.send(raw)
        c.close()
    finally:
        stop()
    with session_scope(url) as s:
        return list(s.scalars(select(LabResultSet.id).order_by(LabResultSet.id)))


def test_results_reach_a_his_that_refuses_then_accepts_once_and_in_order(db_url: str):
    result_ids = _results(db_url, 5)
    assert len(result_ids) == 5
    his_port = free_port()
    settings = LisSettings(his_endpoints={"BRANCH1": f"127.0.0.1:{his_port}"},
                           outbound_backoff_base=0.2, outbound_backoff_max=0.5,
                           outbound_timeout=2.0)
    now = utcnow()
    with session_scope(db_url) as s:
        for rid in result_ids:
            verify_result_set(s, rid, "labdoc", now)
            # No institution BRANCH1 exists in this database: the result keeps the raw code,
            # which is also the HIS endpoint key.
            assert queue_result(s, rid, settings, now) is not None
        control_ids = [o.control_id for o in s.scalars(select(LabOutbound)
                                                       .order_by(LabOutbound.id))]
        patient_keys = {o.patient_key for o in s.scalars(select(LabOutbound))}
    assert len(patient_keys) == 1  # one patient: strictly ordered queue

    # The HIS is down: connection refused; nothing is delivered, attempts are counted.
    report = deliver_due(db_url, settings)
    assert report.acked == 0 and report.failed == 1 and report.pending == 5
    time.sleep(0.25)
    report = deliver_due(db_url, settings)
    assert report.acked == 0

    his = HisListener(his_port)
    his.start()
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            report = deliver_due(db_url, settings)
            if report.pending == 0:
                break
            time.sleep(0.1)
    finally:
        his.stop()
    assert report.pending == 0
    got = [m.split("\r")[0].split("|")[9] for m in his.received]
    assert got == control_ids  # every report once, in order
    with session_scope(db_url) as s:
        rows = s.scalars(select(LabOutbound).order_by(LabOutbound.id)).all()
        assert {r.status for r in rows} == {"acked"}
        assert rows[0].attempts >= 3  # refused twice at least, then accepted
    # Each message is a valid ORU^R01 carrying the observation.
    first = his.received[0]
    assert "ORU^R01^ORU_R01" in first and "\rOBX|1|NM|K^Potassium^L||4.0|mmol/L|3.5-5.5" in first


def test_enhanced_mode_commit_accept_counts_as_delivered(db_url: str):
    result_ids = _results(db_url, 1)
    his_port = free_port()
    settings = LisSettings(his_endpoints={"BRANCH1": f"127.0.0.1:{his_port}"},
                           outbound_timeout=2.0)
    with session_scope(db_url) as s:
        queue_result(s, result_ids[0], settings, utcnow())
    his = HisListener(his_port, mode="CA")
    his.start()
    try:
        report = deliver_due(db_url, settings)
    finally:
        his.stop()
    assert report.acked == 1 and report.pending == 0


def test_undeliverable_message_is_dead_lettered_and_the_queue_moves_on(db_url: str):
    result_ids = _results(db_url, 2)
    his_port = free_port()
    settings = LisSettings(his_endpoints={"BRANCH1": f"127.0.0.1:{his_port}"},
                           outbound_dead_after=60, outbound_timeout=1.0)
    now = utcnow()
    with session_scope(db_url) as s:
        for rid in result_ids:
            queue_result(s, rid, settings, now)
    his = HisListener(his_port, mode="AR")
    his.start()
    try:
        report = deliver_due(db_url, settings, now=now + timedelta(seconds=61))
        assert report.dead == 1 and report.pending == 1
        his.mode = "AA"
        report = deliver_due(db_url, settings, now=now + timedelta(seconds=62))
        assert report.acked == 1 and report.pending == 0
    finally:
        his.stop()
    with session_scope(db_url) as s:
        dead = s.scalars(select(DeadLetter)).all()
        assert len(dead) == 1 and dead[0].task_name == "lis_bridge.tasks.send_outbound"
        assert "AR" in dead[0].error


def test_parse_ack_understands_original_and_enhanced_codes():
    for code in ("AA", "CA"):
        assert parse_ack(f"MSH|^~\\&|H|F|||1||ACK|1|P|2.5\rMSA|{code}|X1").is_positive
    for code in ("AE", "AR", "CE", "CR"):
        assert not parse_ack(f"MSH|^~\\&|H|F|||1||ACK|1|P|2.5\rMSA|{code}|X1").is_positive


def test_celery_task_runs_a_delivery_pass(db_url: str, monkeypatch):
    import json

    from hub.config import get_settings
    from lis_bridge.tasks import send_outbound

    result_ids = _results(db_url, 1)
    his_port = free_port()
    endpoints = {"BRANCH1": f"127.0.0.1:{his_port}"}
    with session_scope(db_url) as s:
        queue_result(s, result_ids[0], LisSettings(his_endpoints=endpoints), utcnow())
    monkeypatch.setenv("YIGONG_DATABASE_URL", db_url)
    monkeypatch.setenv("YIGONG_LIS_HIS_ENDPOINTS", json.dumps(endpoints))
    get_settings.cache_clear()
    his = HisListener(his_port)
    his.start()
    try:
        assert send_outbound.apply().get() == {"acked": 1, "failed": 0, "dead": 0, "pending": 0}
    finally:
        his.stop()
        get_settings.cache_clear()
    assert len(his.received) == 1
