"""Node -> hub end to end: origin and manifest reach the hub; the worklist item turns ready."""

from __future__ import annotations

import contextlib
import time

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests.conftest import DEMO_PASSWORD
from tests.integration.node.conftest import scu_send, wait_until

pytestmark = pytest.mark.integration

STUDY = "dicom/series/study_98892001_ct"


def _item_for(hub_server, study_uid: str) -> dict | None:
    headers = hub_server.headers("admin")
    items = requests.get(hub_server.url + "/api/worklist", params={"kind": "imaging"},
                         headers=headers, timeout=10).json()
    for it in items:
        detail = requests.get(f"{hub_server.url}/api/worklist/{it['id']}", headers=headers,
                              timeout=10).json()
        if detail["natural_key"] == study_uid:
            return detail
    return None


def test_manifest_makes_the_item_ready_with_the_branch_as_institution(
    hub_server, testdata, node_settings, start_node, tmp_path
):
    node_settings.hub_url = hub_server.url
    node_settings.hub_user = "tech.br01"
    node_settings.hub_password = DEMO_PASSWORD
    node_settings.institution_code = "BR01"
    node_settings.study_quiet_seconds = 1.0
    node_settings.manifest_poll_seconds = 0.2
    node = start_node(node_settings)
    files = sorted((testdata / STUDY).rglob("*.dcm"))
    study_uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    # "CT1" is no AE title the hub knows: only the node's origin call names the branch.
    assert set(scu_send(files, node.port, calling_aet="CT1").values()) == {0x0000}

    def ready() -> dict | None:
        item = _item_for(hub_server, study_uid)
        return item if item and item["status"] == "ready" else None

    item = wait_until(ready, timeout=60, interval=0.3, what="the worklist item to be ready")
    assert item["institution"]["code"] == "BR01"
    assert item["details"]["manifest_count"] == len(files)
    assert item["details"]["manifest_missing"] == 0
    assert node.ledger.status().studies_awaiting_manifest == 0

    # A late instance reopens the study at the node; its new manifest lists it too.
    late = pydicom.dcmread(files[0])
    late.SOPInstanceUID = generate_uid()
    late_path = tmp_path / "late.dcm"
    late.save_as(late_path)
    assert scu_send([late_path], node.port, calling_aet="CT1") == {late_path: 0x0000}
    wait_until(lambda: (_item_for(hub_server, study_uid) or {}).get("details", {})
               .get("manifest_count") == len(files) + 1,
               timeout=60, interval=0.3, what="the second manifest")
    wait_until(ready, timeout=60, interval=0.3, what="the item to be ready again")


class CuttableProxy:
    """A TCP relay between the node and Orthanc's DICOM port whose link can be cut."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.is_cut = False
        self.conns: list = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        self.is_cut = True
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.close()
            self.conns.clear()

    def restore(self) -> None:
        self.is_cut = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_link_cut_mid_study_item_ready_only_after_all_arrived(
    hub_server, orthanc, orthanc_client, testdata, node_settings, start_node
):
    proxy = CuttableProxy(orthanc.config.dicom_port)
    try:
        node_settings.hub_port = proxy.port
        node_settings.hub_url = hub_server.url
        node_settings.hub_user = "tech.br01"
        node_settings.hub_password = DEMO_PASSWORD
        node_settings.institution_code = "BR01"
        node_settings.study_quiet_seconds = 1.0
        node_settings.manifest_poll_seconds = 0.2
        node = start_node(node_settings)
        files = sorted((testdata / STUDY).rglob("*.dcm"))
        study_uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
        assert set(scu_send(files[:3], node.port).values()) == {0x0000}
        wait_until(lambda: node.ledger.status().forwarded_total == 3, what="first part")
        proxy.cut()
        assert set(scu_send(files[3:], node.port).values()) == {0x0000}
        # Orthanc calls the partial study stable after 2 s (StableAge of the fixture).
        orthanc_id = wait_until(lambda: orthanc_client.lookup_study(study_uid), what="study")
        wait_until(lambda: orthanc_client.get_json(f"/studies/{orthanc_id}")["IsStable"],
                   timeout=30, what="Orthanc to call the partial study stable")
        # The hub's follower passes every 0.3 s; give it a few passes to (wrongly) settle it.
        deadline = time.monotonic() + 5
        status_during_outage = "receiving"
        while time.monotonic() < deadline and status_during_outage != "ready":
            status_during_outage = (_item_for(hub_server, study_uid) or {}).get("status")
            time.sleep(0.3)
        assert node.ledger.status().queue_depth == len(files) - 3
        proxy.restore()

        def complete_and_ready() -> dict | None:
            it = _item_for(hub_server, study_uid)
            done = it and it["status"] == "ready" and it["details"].get("manifest_count")
            return it if done == len(files) else None

        item = wait_until(complete_and_ready, timeout=60, interval=0.3,
                          what="the complete study to be ready")
        assert item["instance_count"] == len(files)
        # The hub waits for the node's manifest, not for Orthanc's quiet-time guess.
        assert status_during_outage == "receiving"
    finally:
        proxy.close()
