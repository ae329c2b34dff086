"""Orders in over MLLP (issue 8): ORM^O01 / OMI^O23 / OMG^O19 with NW, XO, CA, DC; refusals
answer AE with ERR and change nothing; lab orders keep going to the lab. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub import audit
from hub.config import Settings
from hub.db.lab_models import LabOrder
from hub.db.models import WorklistItem
from hub.db.order_models import ImagingOrder
from hub.db.session import session_scope
from hub.domain.worklist import Event, ItemKind
from hub.intake import IntakeRules, NewItem, enqueue
from hub.services import orders as orders_svc
from hub.services.patients import PatientRef
from hub.services.worklist import apply_event
from tests.conftest import seed_demo
from tests.integration.lab.conftest import SyncMllp, err, msa
from tests.integration.reports.conftest import snapshot

from .conftest import orm

pytestmark = pytest.mark.integration
RULES = IntakeRules.from_settings(Settings())


def _orders(url: str) -> list[ImagingOrder]:
    with session_scope(url) as s:
        rows = list(s.scalars(select(ImagingOrder).order_by(ImagingOrder.id)))
        s.expunge_all()
        return rows


def _without_raw(snap: dict) -> dict:
    # A refused frame is stored with its AE for inspection; nothing else may change.
    return {k: v for k, v in snap.items() if k != "lab_raw_messages"}


def test_orm_creates_a_scheduled_order_with_a_hub_accession(order_bridge, db_url):
    seed_demo(db_url)
    c = SyncMllp(order_bridge.port)
    ack = c.send(orm("O-1", "P1001", national_id="110101196503120012"))
    assert msa(ack)[1:3] == ["AA", "O-1"]
    [order] = _orders(db_url)
    assert order.status == "scheduled" and order.kind == "imaging"
    assert order.institution_code == "BR01" and order.placer_order_number == "P1001^BR01HIS"
    assert order.accession_number == f"YG{order.id:08d}"
    assert order.modality == "CT" and order.priority == "stat" and order.body_part == "CHEST"
    assert order.procedure_code == "CT-CHEST" and order.procedure_name == "胸部CT平扫"
    assert order.reason == "咳嗽两周，排除肺部占位"
    assert order.ordering_clinician == "D0042^刘^医生"
    assert order.patient_name == "王^小东" and order.patient_id is not None
    # 09:30 in Shanghai (no offset in the message) is 01:30 UTC.
    assert order.scheduled_at.replace(tzinfo=UTC) == datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
    with session_scope(db_url) as s:
        [entry] = orders_svc.worklist_entries(s, "BR01")
        assert orders_svc.worklist_entries(s, "BR02") == []
        assert s.scalar(select(LabOrder.id)) is None  # not a lab order
    assert entry["accession_number"] == order.accession_number
    assert entry["patient_name"] == "王^小东" and entry["referring_physician"] == "刘^医生"


def test_omi_with_ipc_then_change_then_cancel(order_bridge, db_url):
    seed_demo(db_url)
    c = SyncMllp(order_bridge.port)
    ack = c.send(orm("O-2", "P2001", msg="OMI^O23", accession="HIS-ACC-7", station="BR01-CT",
                     priority="R"))
    assert msa(ack)[1] == "AA"
    [order] = _orders(db_url)
    assert order.accession_number == "HIS-ACC-7" and order.scheduled_station_aet == "BR01-CT"
    assert order.priority == "routine"
    ack = c.send(orm("O-3", "P2001", control="XO", msg="OMI^O23", priority="S",
                     when="20261127140000"))
    assert msa(ack)[1] == "AA"
    [order] = _orders(db_url)
    assert order.priority == "stat" and order.status == "scheduled"
    assert order.scheduled_at.replace(tzinfo=UTC) == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    assert order.history[-1]["event"] == "change"
    ack = c.send(orm("O-4", "P2001", control="CA", msg="OMI^O23"))
    assert msa(ack)[1] == "AA"
    assert _orders(db_url)[0].status == "cancelled"
    with session_scope(db_url) as s:
        assert orders_svc.worklist_entries(s, "BR01") == []


def test_omg_is_an_ecg_order(order_bridge, db_url):
    seed_demo(db_url)
    c = SyncMllp(order_bridge.port)
    ack = c.send(orm("O-5", "P3001", msg="OMG^O19", modality="", code="ECG12^静息心电图^L"))
    assert msa(ack)[1] == "AA"
    [order] = _orders(db_url)
    assert order.kind == "ecg" and order.modality == "ECG"


def test_lab_orders_still_go_to_the_lab(order_bridge, db_url):
    seed_demo(db_url)
    c = SyncMllp(order_bridge.port)
    ack = c.send(orm("O-6", "L4001", modality="", code="CHEM^生化^L"))
    assert msa(ack)[1] == "AA"
    assert _orders(db_url) == []
    with session_scope(db_url) as s:
        assert s.scalar(select(LabOrder.placer_order_number)) == "L4001^BR01HIS"


def _read_order(url: str, placer: str) -> None:
    """Bring an order to 'in reading' the way the hub does: study matched, reader claims."""
    with session_scope(url) as s:
        order = s.scalar(select(ImagingOrder).where(
            ImagingOrder.placer_order_number == f"{placer}^BR01HIS"))
        item = enqueue(s, NewItem(kind=ItemKind.IMAGING, natural_key="2.25.999",
                                  institution_code="BR01",
                                  patient=PatientRef("BR01-000123", "王^小东"), ready=True,
                                  modality="CT", accession_number=order.accession_number),
                       RULES)
        assert orders_svc.match_arriving_study(s, item, datetime.now(UTC),
                                               RULES.turnaround_minutes) is order
        apply_event(s, item, Event.CLAIM, audit.SYSTEM)
        assert order.status == "in_reading"


def test_refused_orders_answer_ae_and_change_nothing(order_bridge, db_url):
    seed_demo(db_url)
    c = SyncMllp(order_bridge.port)
    assert msa(c.send(orm("B-1", "P5001")))[1] == "AA"
    cases = [
        # duplicate placer order number (a new MSH-10: not a re-send)
        (orm("B-2", "P5001", accession="OTHER1"), "ORC^1^2", "205"),
        # unknown patient without identifiers
        (orm("B-3", "P5002", pid3="", name="无名^氏"), "PID^1^3", "101"),
        # change / cancel of an order we do not have
        (orm("B-4", "P5999", control="CA"), "ORC^1^2", "204"),
        # an order control we do not act on
        (orm("B-5", "P5001", control="SC"), "ORC^1^1", "103"),
        # a HIS accession that is not a DICOM SH value
        (orm("B-6", "P5003", accession="X" * 17), "OBR^1^18", "102"),
    ]
    _read_order(db_url, "P5001")
    # a cancel for an order already read
    cases.append((orm("B-7", "P5001", control="CA"), "ORC^1^1", "206"))
    cases.append((orm("B-8", "P5001", control="XO", priority="R"), "ORC^1^1", "206"))
    for message, location, code in cases:
        before = _without_raw(snapshot(db_url))
        ack = c.send(message)
        assert msa(ack)[1] == "AE", ack
        assert f"|{location}|{code}^" in err(ack), err(ack)
        assert _without_raw(snapshot(db_url)) == before, location
    orders = _orders(db_url)
    assert [o.placer_order_number for o in orders] == ["P5001^BR01HIS"]
    assert orders[0].status == "in_reading" and orders[0].priority == "stat"
    with session_scope(db_url) as s:
        assert s.scalar(select(WorklistItem.priority)) == "stat"  # inherited from the order


def test_a_resent_order_gets_the_same_ack_and_no_duplicate(order_bridge, db_url):
    seed_demo(db_url)
    c = SyncMllp(order_bridge.port)
    first = c.send(orm("R-1", "P6001"))
    again = c.send(orm("R-1", "P6001"))
    assert first == again and msa(first)[1] == "AA"
    assert len(_orders(db_url)) == 1
