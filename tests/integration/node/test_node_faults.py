"""Faults: the archive goes away mid-study; the node is killed mid-receive.

In both, every instance the modality got a success status for reaches Orthanc exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import Verification

from dicom_node.ledger import Ledger
from hub.orthanc.client import OrthancClient
from hub.orthanc.server import OrthancConfig, OrthancProcess
from tests.conftest import REPO, free_port
from tests.integration.node.conftest import orthanc_count, orthanc_sop_uids, scu_send, wait_until

pytestmark = pytest.mark.integration


def test_archive_stopped_mid_study_gets_every_instance_once_after_restart(
    ct_study_300, tmp_path, node_settings, start_node
):
    cfg = OrthancConfig(root=tmp_path / "orthanc", http_port=free_port(),
                        dicom_port=free_port(), stable_age=2)
    archive = OrthancProcess(cfg)
    archive.start()
    try:
        client = OrthancClient(cfg.url, cfg.user, cfg.password)
        node_settings.hub_port = cfg.dicom_port
        node = start_node(node_settings)
        result: dict[Path, int] = {}
        sender = threading.Thread(
            target=lambda: result.update(scu_send(ct_study_300, node.port)), daemon=True)
        sender.start()
        wait_until(lambda: orthanc_count(client) >= 40, timeout=60, interval=0.02,
                   what="forwarding to start")
        # SIGKILL: a graceful stop lets Orthanc finish the open associations first, which
        # would be the whole study. A crash or a cut link stops it mid-transfer.
        archive.proc.kill()
        archive.proc.wait(10)
        sender.join(timeout=120)
        # The modality is not held up by the archive being down: it got success for all.
        assert len(result) == 300 and set(result.values()) == {0x0000}
        assert node.ledger.status().queue_depth > 0, "archive came back too late to test"
        archive.start()
        wait_until(lambda: node.ledger.status().queue_depth == 0, timeout=90,
                   what="the queue to drain after the archive restarted")
        uids = orthanc_sop_uids(client)
        expected = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                    for p in ct_study_300}
        assert len(uids) == 300 and set(uids) == expected
        assert node.ledger.status().forwarded_total == 300
        assert node.spool.depth() == 0
        # Release the node's associations first; Orthanc's clean stop waits for them.
        node.stop()
    finally:
        archive.stop()


def _start_node_process(spool: Path, port: int, orthanc, log: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        YIGONG_NODE_PORT=str(port), YIGONG_NODE_SPOOL_DIR=str(spool),
        YIGONG_NODE_HUB_PORT=str(orthanc.config.dicom_port), YIGONG_NODE_HUB_AET=orthanc.config.aet,
        YIGONG_NODE_MIN_FREE_BYTES="0", YIGONG_NODE_WORKERS="2",
        YIGONG_NODE_RETRY_BASE="0.1", YIGONG_NODE_RETRY_MAX="1",
    )
    proc = subprocess.Popen([sys.executable, "-m", "dicom_node"], cwd=REPO, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(Verification)

    def answers() -> bool:
        assert proc.poll() is None, f"node exited; see {log}"
        assoc = ae.associate("127.0.0.1", port, ae_title="YIGONG-NODE")
        if assoc.is_established:
            assoc.release()
            return True
        return False

    wait_until(answers, timeout=30, interval=0.1, what="the node process to answer C-ECHO")
    return proc


def test_node_killed_mid_receive_loses_no_acknowledged_instance(
    ct_study_300, tmp_path, orthanc, orthanc_client
):
    spool, port, log = tmp_path / "spool", free_port(), tmp_path / "node.log"
    proc = _start_node_process(spool, port, orthanc, log)
    acked: list[str] = []
    killed = threading.Event()

    def killer() -> None:
        while len(acked) < 100 and proc.poll() is None:
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)  # mid-transfer of the next instance
        killed.set()

    datasets = [pydicom.dcmread(p) for p in ct_study_300]
    ae = AE(ae_title="CT1")
    pairs = {(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets}
    assoc = ae.associate("127.0.0.1", port, ae_title="YIGONG-NODE",
                         contexts=[build_context(s, t) for s, t in pairs])
    assert assoc.is_established
    threading.Thread(target=killer, daemon=True).start()
    try:
        for ds in datasets:
            rsp = assoc.send_c_store(ds)
            if rsp.get("Status") != 0x0000:
                break
            acked.append(str(ds.SOPInstanceUID))
    finally:
        if assoc.is_established:
            assoc.abort()
    assert killed.wait(10)
    proc.wait(10)
    assert 100 <= len(acked) < 300
    proc = _start_node_process(spool, port, orthanc, log)
    try:
        wait_until(lambda: Ledger(spool / "ledger.sqlite3").status().queue_depth == 0,
                   timeout=60, what="the restarted node to drain its spool")
        uids = orthanc_sop_uids(orthanc_client)
        assert len(uids) == len(set(uids)), "an instance was stored twice"
        assert set(acked) <= set(uids), "an acknowledged instance was lost"
        assert not list((spool / "tmp").iterdir()), "half-written file left in the spool"
    finally:
        proc.terminate()
        proc.wait(15)
