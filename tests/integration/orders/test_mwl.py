"""Modality worklist C-FIND at the node (issue 8), from a pynetdicom modality SCU.

Chinese names come back in the character set the modality asked for; malformed keys get a
failure status and the association carries on; the node answers from its local copy while the
hub is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityWorklistInformationFind

from dicom_node.config import NodeSettings
from dicom_node.manifest import HubClient
from dicom_node.node import Node
from dicom_node.worklist import WorklistSync
from tests.conftest import free_port

pytestmark = pytest.mark.integration

ENTRIES = [
    {"accession_number": "YG00000001", "patient_name": "王^小东", "patient_id": "BR01-000123",
     "patient_birth_date": "19650312", "patient_sex": "M", "study_instance_uid": "2.25.11",
     "requested_procedure_id": "YG00000001", "requested_procedure_description": "胸部CT平扫",
     "priority": "stat", "reason": "咳嗽两周", "referring_physician": "刘^医生",
     "modality": "CT", "scheduled_at": "2026-11-26T01:30:00+00:00",
     "scheduled_station_aet": "BR01-CT", "sps_id": "YG00000001", "placer_order_number": "P1"},
    {"accession_number": "YG00000002", "patient_name": "Zhang^San=张^三",
     "patient_id": "BR01-000124", "patient_birth_date": "19700101", "patient_sex": "F",
     "study_instance_uid": "2.25.12", "requested_procedure_id": "YG00000002",
     "requested_procedure_description": "腹部超声", "priority": "routine", "reason": "",
     "referring_physician": "", "modality": "US", "scheduled_at": "2026-11-27T02:00:00+00:00",
     "scheduled_station_aet": "", "sps_id": "YG00000002", "placer_order_number": "P2"},
]


@pytest.fixture
def mwl_node(tmp_path: Path) -> Iterator[Node]:
    settings = NodeSettings(port=0, spool_dir=tmp_path / "spool", min_free_bytes=0,
                            hub_port=free_port(), workers=1)
    node = Node(settings)
    node.worklist.replace(ENTRIES, 0.0)
    node.start()
    yield node
    node.stop()


def find(port: int, ds: Dataset, aet: str = "BR01-CT",
         wire: list[bytes] | None = None) -> list[tuple[int, Dataset | None]]:
    """C-FIND over a fresh association; ``wire`` collects each response identifier's bytes."""
    ae = AE(ae_title=aet)
    ae.add_requested_context(ModalityWorklistInformationFind)

    def on_recv(event) -> None:
        data = getattr(event.message, "data_set", None)
        if wire is not None and data is not None:
            wire.append(data.getvalue())

    assoc = ae.associate("127.0.0.1", port, ae_title="YIGONG-NODE",
                         evt_handlers=[(evt.EVT_DIMSE_RECV, on_recv)])
    assert assoc.is_established
    try:
        return [(int(status.Status), ident) for status, ident in
                assoc.send_c_find(ds, ModalityWorklistInformationFind)]
    finally:
        assoc.release()


def mwl_query(name: str = "", charset: str | None = None, **sps: str) -> Dataset:
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.PatientID = ""
    ds.AccessionNumber = ""
    ds.StudyInstanceUID = ""
    ds.RequestedProcedurePriority = ""
    ds.RequestedProcedureDescription = ""
    item = Dataset()
    item.Modality = sps.get("Modality", "")
    item.ScheduledStationAETitle = sps.get("ScheduledStationAETitle", "")
    item.ScheduledProcedureStepStartDate = sps.get("ScheduledProcedureStepStartDate", "")
    item.ScheduledProcedureStepStartTime = ""
    ds.ScheduledProcedureStepSequence = [item]
    return ds


@pytest.mark.parametrize(("charset", "codec"), [("GB18030", "gb18030"),
                                                ("ISO_IR 192", "utf-8")])
def test_chinese_names_come_back_in_the_requested_character_set(mwl_node, charset, codec):
    wire: list[bytes] = []
    answers = find(mwl_node.port, mwl_query("王*", charset), wire=wire)
    assert [s for s, _ in answers] == [0xFF00, 0x0000]
    ident = answers[0][1]
    assert ident.SpecificCharacterSet == charset
    # On the wire: the name's bytes in the requested encoding (and not in the other one).
    other = "utf-8" if codec == "gb18030" else "gb18030"
    assert "王^小东".encode(codec) in wire[0] and "王^小东".encode(other) not in wire[0]
    assert str(ident.PatientName) == "王^小东"
    assert "刘^医生".encode(codec) not in wire[0]  # not asked for, not sent
    assert ident.AccessionNumber == "YG00000001"
    assert ident.RequestedProcedurePriority == "STAT"
    assert ident.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "093000"


def test_ideographic_group_and_case_insensitive_alphabetic_match(mwl_node):
    for pattern in ("张*", "zhang*", "ZHANG^SAN"):
        wire: list[bytes] = []
        answers = find(mwl_node.port, mwl_query(pattern, "GB18030"), wire=wire)
        assert len(answers) == 2
        assert "Zhang^San=张^三".encode("gb18030") in wire[0]
        assert str(answers[0][1].PatientName) == "Zhang^San=张^三"


def test_no_character_set_asked_gets_the_configured_default(mwl_node):
    answers = find(mwl_node.port, mwl_query("", None, Modality="US"))
    assert len(answers) == 2
    assert answers[0][1].SpecificCharacterSet == "ISO_IR 192"
    assert str(answers[0][1].PatientName) == "Zhang^San=张^三"


def test_a_repertoire_without_chinese_falls_back_to_the_default(mwl_node):
    answers = find(mwl_node.port, mwl_query("", "ISO_IR 100", Modality="CT"))
    assert answers[0][1].SpecificCharacterSet == "ISO_IR 192"
    assert str(answers[0][1].PatientName) == "王^小东"


def test_date_range_modality_and_station(mwl_node):
    assert len(find(mwl_node.port, mwl_query(ScheduledProcedureStepStartDate="20261126"))) == 2
    assert len(find(mwl_node.port, mwl_query(
        ScheduledProcedureStepStartDate="20261126-20261127"))) == 3
    assert len(find(mwl_node.port, mwl_query(Modality="CT",
                                             ScheduledStationAETitle="BR01-DR"))) == 1
    # The US step has no station: offered to every station.
    assert len(find(mwl_node.port, mwl_query(Modality="US",
                                             ScheduledStationAETitle="BR01-DR"))) == 2


def test_malformed_keys_get_a_failure_status_and_the_node_goes_on(mwl_node):
    bad_date = find(mwl_node.port, mwl_query(ScheduledProcedureStepStartDate="2026-11-26"))
    assert [s for s, _ in bad_date] == [0xA900]
    two_items = mwl_query()
    two_items.ScheduledProcedureStepSequence.append(Dataset())
    assert [s for s, _ in find(mwl_node.port, two_items)] == [0xA900]
    inverted = mwl_query(ScheduledProcedureStepStartDate="20261130-20261101")
    assert [s for s, _ in find(mwl_node.port, inverted)] == [0xA900]
    # The same node still answers a good query.
    assert [s for s, _ in find(mwl_node.port, mwl_query("王*", "GB18030"))] == [0xFF00, 0]


def test_hub_unreachable_keeps_the_last_copy(mwl_node):
    client = HubClient(f"http://127.0.0.1:{free_port()}", "node.br01", "x", timeout=2)
    sync = WorklistSync(client, mwl_node.worklist, "BR01", 60)
    assert sync.sync_once() is False and sync.last_error
    assert len(find(mwl_node.port, mwl_query())) == 3
