"""Forwarder with a fake transport: delete only after confirmation, back off, quarantine."""

from __future__ import annotations

import io
import random
import threading
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from dicom_node.config import NodeSettings
from dicom_node.forwarder import Backoff, Forwarder
from dicom_node.ledger import Ledger
from dicom_node.spool import InstanceInfo, Spool
from dicom_node.statuses import HubUnavailable, InstanceRefused


class FakeTransport:
    def __init__(self, script: list[Exception | None] | None = None) -> None:
        self.script = list(script or [])
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def send(self, path: Path, info: InstanceInfo) -> None:
        with self.lock:
            outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        assert path.exists(), "sent a file that is not there"
        with self.lock:
            self.sent.append(info.sop_instance_uid)

    def release_idle(self) -> None:
        pass

    def close(self) -> None:
        pass


def _setup(tmp_path, transport, **kw):
    settings = NodeSettings(spool_dir=tmp_path, workers=1, retry_base=0.01, retry_max=0.05, **kw)
    spool, ledger = Spool(tmp_path), Ledger(tmp_path / "ledger.sqlite3")
    fwd = Forwarder(settings, spool, ledger, transport_factory=lambda: transport,
                    rescan_seconds=0.1)
    return spool, ledger, fwd


def _dicom(uid: str) -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.1"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        CTImageStorage, uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _put(spool, ledger, uid: str) -> None:
    info = InstanceInfo(uid, CTImageStorage, "1.2.3", "1.2.3.1", ExplicitVRLittleEndian)
    spool.put(_dicom(uid), info)
    ledger.record_received(info)


def _wait(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_file_is_deleted_only_after_the_hub_confirmed(tmp_path):
    transport = FakeTransport([HubUnavailable("down"), HubUnavailable("down")])
    spool, ledger, fwd = _setup(tmp_path, transport)
    _put(spool, ledger, "1.1")
    fwd.start()
    try:
        _wait(lambda: transport.sent == ["1.1"] and spool.depth() == 0 and fwd.in_flight() == 0)
        st = ledger.status()
        assert st.forwarded_total == 1 and st.queue_depth == 0
        assert "down" in st.last_error
    finally:
        fwd.stop()


def test_refused_instance_is_quarantined_after_max_attempts(tmp_path):
    transport = FakeTransport([InstanceRefused("0xC000 bad")] * 3)
    spool, ledger, fwd = _setup(tmp_path, transport, max_attempts=3)
    _put(spool, ledger, "2.2")
    fwd.start()
    try:
        _wait(lambda: ledger.status().quarantined == 1)
        assert (tmp_path / "quarantine" / "2.2.dcm").exists()
        assert "0xC000" in (tmp_path / "quarantine" / "2.2.why").read_text()
        assert spool.depth() == 0 and transport.sent == []
    finally:
        fwd.stop()


def test_spool_left_by_a_previous_run_is_sent_at_start(tmp_path):
    transport = FakeTransport()
    spool, ledger, fwd = _setup(tmp_path, transport)
    for i in range(5):
        _put(spool, ledger, f"3.{i}")
    spool.claim(spool.path_for("3.0"))  # a worker was sending it when the node died
    fwd.start()
    try:
        _wait(lambda: len(transport.sent) == 5 and spool.depth() == 0)
        assert sorted(transport.sent) == [f"3.{i}" for i in range(5)]
    finally:
        fwd.stop()


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    b = Backoff(base=0.5, cap=8.0, rng=random.Random(1))
    assert [b.delay_for(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]
    waits = [b.failed() for _ in range(1)]
    assert 0.05 <= waits[0] <= 0.5
    b.succeeded()
    assert b.failures == 0


def test_backoff_counts_one_outage_once_for_all_workers():
    b = Backoff(base=1.0, cap=60.0, rng=random.Random(2))
    b.failed()
    for _ in range(3):  # other workers hitting the same dead hub
        b.failed()
    assert b.failures == 1


@pytest.mark.parametrize("n", [1, 3])
def test_stop_returns_quickly(tmp_path, n):
    spool, ledger, fwd = _setup(tmp_path, FakeTransport())
    fwd.settings.workers = n
    fwd.start()
    t = time.monotonic()
    fwd.stop()
    assert time.monotonic() - t < 2
