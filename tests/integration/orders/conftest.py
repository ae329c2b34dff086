"""Fixtures for orders (issue 8): HL7 order messages, a bridge on a real database, a HIS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.lab.conftest import RunningBridge, start_bridge
from tests.integration.node.conftest import start_node  # noqa: F401 - fixture for the e2e test
from tests.integration.reports.conftest import report_api  # noqa: F401 - fixture for API tests


def orm(control_id: str, placer: str, *, control: str = "NW", modality: str = "CT",
        accession: str = "", name: str = "王^小东", patient_id: str = "BR01-000123",
        priority: str = "S", when: str = "20261126093000", station: str = "",
        code: str = "CT-CHEST^胸部CT平扫^L", reason: str = "^咳嗽两周，排除肺部占位",
        clinician: str = "D0042^刘^医生", facility: str = "BR01HIS", msg: str = "ORM^O01",
        national_id: str = "", pid3: str | None = None) -> bytes:
    """An imaging order (ORM^O01 v2.5.1 by default; OMI^O23 adds an IPC segment), UTF-8."""
    ids = pid3 if pid3 is not None else f"{patient_id}^^^BR01^MR"
    if national_id:
        ids += f"~{national_id}^^^CHN^NI"
    segs = [
        f"MSH|^~\\&|HIS|{facility}|YIGONG|HUB|20261126080000||{msg}|{control_id}|P|2.5.1"
        "||||||UNICODE UTF-8",
        f"PID|1||{ids}||{name}||19650312|M",
        f"ORC|{control}|{placer}^BR01HIS||||||^^^{when}^^{priority}||||{clinician}",
        f"TQ1|1||||||{when}||{priority}",
        # OBR-16 ordering provider, OBR-18 accession (IHE SWF), OBR-24 section, OBR-31 reason
        f"OBR|1|{placer}^BR01HIS||{code}|{priority}|||||||||||{clinician}||{accession}||||||"
        f"{modality}|||||||{reason}",
    ]
    if msg.startswith("OMI"):
        segs.append(f"IPC|{accession}||||{modality}||||{station}")
    return ("\r".join(segs) + "\r").encode("utf-8")


@pytest.fixture
def order_bridge(db_url: str) -> Iterator[RunningBridge]:
    """The LIS bridge (which takes orders too) on the test database."""
    running, stop = start_bridge(db_url)
    yield running
    stop()




def segment(message: str, name: str) -> list[str]:
    """The fields of the first ``name`` segment of an ER7 message."""
    for seg in message.split("\r"):
        if seg.startswith(name + "|"):
            return seg.split("|")
    raise AssertionError(f"no {name} in {message!r}")


@pytest.fixture
def hub_on_db(tmp_path, db_url, orthanc, orthanc_client):
    """A running hub (API + change follower) on SQLite and on PostgreSQL, demo data seeded."""
    from tests.conftest import HubServer, make_settings, seed_demo

    seed_demo(db_url)
    server = HubServer(make_settings(tmp_path, db_url, orthanc), orthanc_client)
    server.start()
    yield server
    server.stop()
