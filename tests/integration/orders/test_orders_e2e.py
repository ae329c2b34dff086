"""Done-when of issue 8: an ORM^O01 over MLLP → the modality finds it with MWL C-FIND at the
node → sends a study built from that worklist entry to the node → the worklist item carries the
order's accession and priority → it is read and signed → the test HIS gets the status updates
and the ORU^R01 quoting the placer order number."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from dicom_node.config import NodeSettings
from hub.clock import utcnow
from hub.db.order_models import ImagingOrder, OrderStatusUpdate
from hub.db.session import session_scope
from hub.demo import synthetic_ct
from hub.services.delivery import deliver_and_sync
from tests.conftest import DEMO_PASSWORD
from tests.helpers import sign_and_deliver_setup, wait_for
from tests.integration.lab.conftest import SyncMllp, msa, start_bridge
from tests.integration.node.conftest import scu_send

from .conftest import orm, segment
from .test_mwl import find, mwl_query

pytestmark = pytest.mark.integration


def _node_settings(tmp_path: Path, orthanc, hub_server) -> NodeSettings:
    return NodeSettings(
        port=0, spool_dir=tmp_path / "spool", min_free_bytes=0, hub_host="127.0.0.1",
        hub_port=orthanc.config.dicom_port, hub_aet=orthanc.config.aet, workers=1,
        retry_base=0.1, retry_max=1.0, hub_url=hub_server.url, hub_user="tech.br01",
        hub_password=DEMO_PASSWORD, institution_code="BR01", study_quiet_seconds=1.0,
        manifest_poll_seconds=0.2, mwl_sync_seconds=0.3, mwl_charset="GB18030")


def test_his_order_to_modality_worklist_to_signed_report_back_to_the_orderer(
        hub_server, orthanc, orthanc_client, start_node, tmp_path):
    server = hub_server
    his, lis, _roots = sign_and_deliver_setup(server)
    bridge, stop_bridge = start_bridge(server.db_url)
    node = start_node(_node_settings(tmp_path, orthanc, server))
    try:
        # 1. The branch HIS places a STAT chest CT (ORM^O01), no accession: the hub assigns one.
        ack = SyncMllp(bridge.port).send(orm("E2E-1", "HIS778899", priority="S",
                                             when=utcnow().strftime("%Y%m%d%H%M%S+0000")))
        assert msa(ack)[1] == "AA"
        with session_scope(server.db_url) as s:
            order = s.scalar(select(ImagingOrder))
            accession, order_id = order.accession_number, order.id
            study_uid = order.study_instance_uid

        # 2. The node synchronises its worklist; the modality finds the patient by name.
        wait_for(lambda: node.worklist.entries(), timeout=30, what="the node's worklist sync")
        answers = find(node.port, mwl_query("王*", "GB18030"), aet="BR01-CT")
        assert [s for s, _ in answers] == [0xFF00, 0x0000]
        entry = answers[0][1]
        assert entry.AccessionNumber == accession and entry.PatientID == "BR01-000123"
        assert entry.RequestedProcedurePriority == "STAT"
        assert entry.StudyInstanceUID == study_uid

        # 3. The modality builds its study from the entry and sends it to the node.
        study = synthetic_ct(slices=4, name=str(entry.PatientName), patient_id=entry.PatientID,
                             charset="GB18030")
        paths = []
        for n, ds in enumerate(study):
            ds.StudyInstanceUID = entry.StudyInstanceUID
            ds.AccessionNumber = entry.AccessionNumber
            ds.StudyDescription = entry.RequestedProcedureDescription
            path = tmp_path / f"ct{n}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        assert set(scu_send(paths, node.port, calling_aet="BR01-CT").values()) == {0}

        # 4. The item is ready, carries the order's accession and priority, reason, orderer.
        li, zhao = server.headers("dr.li"), server.headers("dr.zhao")

        def ready_item():
            items = requests.get(server.url + "/api/worklist", headers=li, timeout=10).json()
            return next((i for i in items if i["status"] == "ready"), None)

        item = wait_for(ready_item, timeout=90, what="the study to become a ready item")
        detail = requests.get(f"{server.url}/api/worklist/{item['id']}", headers=li,
                              timeout=10).json()
        assert detail["natural_key"] == study_uid
        assert detail["accession_number"] == accession and detail["priority"] == "stat"
        assert detail["details"]["order"]["placer_order_number"] == "HIS778899^BR01HIS"
        assert detail["details"]["order"]["reason"] == "咳嗽两周，排除肺部占位"
        assert detail["details"]["order"]["ordering_clinician"] == "D0042^刘^医生"
        rec = requests.get(server.url + "/api/reconciliation", headers=li, timeout=10).json()
        assert all(r["item_id"] != item["id"] for r in rec)  # matched: nothing to reconcile
        got = requests.get(f"{server.url}/api/orders/{order_id}",
                           headers=server.headers("admin"), timeout=10).json()
        assert got["status"] == "received" and got["worklist_item_id"] == item["id"]

        # 5. Read and signed (dr.li writes, dr.zhao verifies).
        base = f"{server.url}/api/worklist/{item['id']}/report"
        r = requests.put(base + "/draft", headers=li, timeout=30, json={
            "template": "ct_chest", "findings": "双肺纹理清晰，未见明确结节。",
            "impression": "胸部CT平扫未见明显异常。", "fields": {"nodule": "无"}})
        assert r.status_code == 200, r.text
        assert requests.post(base + "/submit", headers=li, timeout=30).status_code == 200
        r = requests.post(base + "/verify", headers=zhao, timeout=60)
        assert r.status_code == 200, r.text

        # 6. The HIS gets "received", "in reading", then the signed report, in that order.
        def all_delivered():
            deliver_and_sync(server.db_url, lis)
            return any("ORU^R01" in m for m in his.messages)

        wait_for(all_delivered, timeout=60, interval=0.5, what="the ORU^R01 at the HIS")
        kinds = [segment(m, "MSH")[8] for m in his.messages]
        assert kinds == ["ORM^O01^ORM_O01", "ORM^O01^ORM_O01", "ORU^R01^ORU_R01"]
        received, reading, report = his.messages
        for message, orc5, obr25 in ((received, "IP", "I"), (reading, "IP", "R"),
                                     (report, "CM", "F")):
            orc, obr = segment(message, "ORC"), segment(message, "OBR")
            assert orc[2] == "HIS778899^BR01HIS" and obr[2] == "HIS778899^BR01HIS"
            assert orc[5] == orc5 and obr[25] == obr25 and obr[18] == accession
        assert segment(received, "ORC")[1] == "SC"
        assert "胸部CT平扫未见明显异常" in report
        detail = requests.get(f"{server.url}/api/worklist/{item['id']}", headers=li,
                              timeout=10).json()
        assert detail["status"] == "delivered"
        got = requests.get(f"{server.url}/api/orders/{order_id}",
                           headers=server.headers("admin"), timeout=10).json()
        assert got["status"] == "final"
        with session_scope(server.db_url) as s:
            states = s.scalars(select(OrderStatusUpdate.state)).all()
        assert states == ["queued", "queued"]
        # Once the study arrived the order left the modality worklist.
        wait_for(lambda: not node.worklist.entries(), timeout=30, what="the worklist to empty")
    finally:
        stop_bridge()
        his.close()
