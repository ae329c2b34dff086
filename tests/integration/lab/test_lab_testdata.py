"""Every shared HL7 sample over a real MLLP connection: ACK code and stored records."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.db.lab_models import (
    LabObservation,
    LabObservationHistory,
    LabOrder,
    LabRawMessage,
    LabResultSet,
)
from hub.db.models import WorklistItem
from hub.db.session import session_scope

from .conftest import RunningBridge, SyncMllp, err, msa, start_bridge

# File -> (MSA-1, ERR code or None). ADT: AR 200, documented in docs/lab.md (the bridge takes lab
# messages only; a HIS that broadcasts ADT learns at once that this route does not want them).
EXPECTED: dict[str, tuple[str, str | None]] = {
    "adt/hl7apy_ADT_A01_v26.hl7": ("AR", "200"),
    "adt/python_hl7_sample_ADT_A01_HNAM.hl7": ("AR", "200"),
    "orders/hapi_example_oml_o21_01_OML_O21_msgOP123.hl7": ("AA", None),
    "orders/hapi_example_oml_o21_02_OML_O21_msgOF102.hl7": ("AA", None),
    "orders/hapi_example_oml_o21_07_OML_O21_msgOF109.hl7": ("AA", None),
    # MSH-10 (message control ID) is empty: without it the message cannot be acknowledged
    # meaningfully or de-duplicated, so it is a bad MSH.
    "orders/hapi_example_oml_o21_11_OML_O21_msg11.hl7": ("AR", "101"),
    "orders/hapi_example_oml_o21_13_OML_O21_msgOF101.hl7": ("AA", None),
    # HL7 v2.2 and processing ID D (debugging): not accepted by default.
    "orders/hapi_messages_ORM_O01_1.hl7": ("AR", "203"),
    "orders/hapi_messages_ORM_O01_2.hl7": ("AR", "203"),
    "oru/athena-health_oru-example.hl7": ("AR", "202"),
    "oru/cerner_cerner_lead.hl7": ("AA", None),
    "oru/hapi_example_oml_o21_04_OUL_R22_msgOF105.hl7": ("AA", None),
    "oru/hapi_example_oml_o21_08_OUL_R22_msgOF110.hl7": ("AA", None),
    "oru/hapi_example_oml_o21_10_ORU_R01_LAB562901.hl7": ("AA", None),
    "oru/nist_ORU_R01_2.5.1_SampleTestCase1.hl7": ("AA", None),
    "oru/nist_ORU_R01_2.5.1_SampleTestCase2.hl7": ("AA", None),
    "oru/nist_ORU_R01_2.5.1_SampleTestCase3.hl7": ("AA", None),
    "oru/python_hl7_sample_ORU_R01_GHH_LAB.hl7": ("AA", None),
    "oru/realm_realm-cj-joeslab.hl7": ("AA", None),
    "oru/realm_realm-hepatitis-c-virus.hl7": ("AA", None),
}


def _send_all(bridge: RunningBridge, testdata: Path) -> dict[str, bytes]:
    files = sorted((testdata / "hl7").rglob("*.hl7"))
    assert {str(f.relative_to(testdata / "hl7")) for f in files} == set(EXPECTED), \
        "test data changed: update EXPECTED"
    client = SyncMllp(bridge.port)
    acks = {}
    try:
        for f in files:
            acks[str(f.relative_to(testdata / "hl7"))] = client.send(f.read_bytes())
    finally:
        client.close()
    return acks


def _obs(session, facility: str, filler: str, code: str) -> LabObservation:
    return session.scalar(
        select(LabObservation).join(LabResultSet)
        .where(LabResultSet.sending_facility == facility,
               LabResultSet.filler_order_number == filler, LabObservation.code == code)
    )


def test_every_sample_gets_the_right_ack_and_records(bridge: RunningBridge, testdata: Path):
    acks = _send_all(bridge, testdata)
    for name, (code, err_code) in EXPECTED.items():
        fields = msa(acks[name], "latin-1")
        assert fields[1] == code, (name, acks[name])
        if err_code:
            assert f"{err_code}^" in err(acks[name]) or f"^{err_code}&" in err(acks[name]), name

    with session_scope(bridge.url) as s:
        # Every frame is stored with its ACK, refused ones too.
        assert s.scalar(select(func.count()).select_from(LabRawMessage)) == len(EXPECTED)
        codes = dict(s.execute(select(LabRawMessage.ack_code, func.count())
                               .group_by(LabRawMessage.ack_code)).all())
        assert codes == {"AA": 14, "AR": 6}

        # NIST lead level: final 50 ug/dL H, then corrected (status C) to 25 ug/dl, history kept.
        lead = _obs(s, "EHR Facility^2.16.840.1.113883.3.72.7.2^HL7", "9700123^Lab", "10368-9")
        assert (lead.value, lead.numeric_value, lead.units) == ("25", 25.0, "ug/dl")
        assert lead.reference_range == "<10 ug/dl"
        assert lead.abnormal_flags == ["H"]
        assert lead.result_status == "C" and lead.version == 2
        history = s.scalars(select(LabObservationHistory)
                            .where(LabObservationHistory.observation_id == lead.id)).all()
        assert [(h.value, h.units, h.result_status) for h in history] == [("50", "ug/dL", "F")]
        rs = s.get(LabResultSet, lead.result_set_id)
        assert rs.result_status == "C"

        # HAPI ORU: five NM haematology values, units and ranges as sent.
        hb = _obs(s, "app:LAB", "P999999/5^LAB", "470")
        assert (hb.value_type, hb.numeric_value, hb.units, hb.result_status) == \
            ("NM", 14.31, "g/dL", "F")
        wbc = _obs(s, "app:LAB", "P999999/5^LAB", "409")
        assert (wbc.numeric_value, wbc.units, wbc.reference_range) == \
            (7350.0, "/mm3", "0.00&10000.00")
        # GHH lab: SN value "^182" is 182 with flag H.
        glu = _obs(s, "ELAB-3", "1045813^GHH LAB", "1554-5")
        assert (glu.value_type, glu.numeric_value, glu.units, glu.reference_range,
                glu.abnormal_flags) == ("SN", 182.0, "mg/dl", "70_105", ["H"])
        # OUL^R22: the cancelled observation (status X) is stored with no value.
        cancelled = _obs(s, "Chemistry", "555^chemistry", "30264-6")
        assert (cancelled.value, cancelled.numeric_value, cancelled.result_status) == \
            ("", None, "X")
        post = _obs(s, "Chemistry", "555^chemistry", "14756-1")
        assert (post.numeric_value, post.units, post.reference_range, post.abnormal_flags) == \
            (7200.0, "umol/l", "<7800", ["N"])
        # Realm: the same MSH-10 from two different facilities are two messages.
        cwe = _obs(s, "Joe's Lab^1234^CLIA", "9700123^Lab", "625-4")
        assert cwe.value_type == "CWE" and cwe.value.startswith("66543000^Campylobacter jejuni")
        assert cwe.result_status == "P"
        hcv = _obs(s, "^1234^CLIA", "9700123^Lab", "11294-6")
        assert (hcv.value_type, hcv.value) == ("TX", "food handler")

        # Orders: the placer order from the branch, advanced by status messages and results.
        order = s.scalar(select(LabOrder).where(
            LabOrder.placer_order_number == "12345678^gastric"))
        assert order.filler_order_number == "555^chemistry"
        assert order.specimen_barcode == "123456781"
        assert order.status == "resulted"
        matched = s.scalars(select(LabResultSet).where(LabResultSet.order_id == order.id)).all()
        assert {m.filler_order_number for m in matched} == \
            {"555^chemistry", "placer:12345678^gastric"}
        others = s.scalars(select(LabOrder).where(
            LabOrder.placer_order_number.in_(["555_1^chemistry", "555_2^chemistry"]))).all()
        assert sorted((o.specimen_barcode, o.status) for o in others) == \
            [("123456781", "received"), ("123456782", "received")]

        # Worklist: one lab item per (facility, filler order number), ready, laboratory.
        items = s.scalars(select(WorklistItem).where(WorklistItem.kind == "lab")).all()
        assert len(items) == 8
        assert {i.specialty for i in items} == {"laboratory"}
        assert {i.status for i in items} == {"ready"}
        nist = next(i for i in items if i.natural_key.startswith("EHR Facility"))
        assert nist.patient_name == "Johnson Philip"
        assert "corrected result" in nist.flags
        # Unknown facilities still reach the worklist, flagged for a person.
        assert all(any("unknown institution" in f for f in i.flags) for i in items)


def test_no_obx_result_is_stored_when_debug_processing_is_allowed(db_url: str, testdata: Path):
    running, stop = start_bridge(db_url, processing_ids=["P", "T", "D"])
    try:
        client = SyncMllp(running.port)
        ack = client.send((testdata / "hl7/oru/athena-health_oru-example.hl7").read_bytes())
        client.close()
    finally:
        stop()
    assert msa(ack)[1] == "AA"
    with session_scope(db_url) as s:
        rs = s.scalar(select(LabResultSet))
        assert rs.filler_order_number == "1023:RC00001R-1^LAB.VVH"
        assert rs.service_code == "AMY"
        assert rs.notes == [] or isinstance(rs.notes, list)
        assert s.scalar(select(func.count()).select_from(LabObservation)) == 0


@pytest.mark.parametrize("name", ["oru/nist_ORU_R01_2.5.1_SampleTestCase1.hl7"])
def test_resent_control_id_gets_the_same_ack_and_creates_nothing(
        bridge: RunningBridge, testdata: Path, name: str):
    raw = (testdata / "hl7" / name).read_bytes()
    client = SyncMllp(bridge.port)
    first = client.send(raw)
    client.close()
    with session_scope(bridge.url) as s:
        before = [s.scalar(select(func.count()).select_from(t)) for t in
                  (LabRawMessage, LabResultSet, LabObservation, WorklistItem)]
    # Re-sent on a new connection, as a sender does after a lost ACK.
    client = SyncMllp(bridge.port)
    second = client.send(raw)
    client.close()
    assert second == first
    with session_scope(bridge.url) as s:
        after = [s.scalar(select(func.count()).select_from(t)) for t in
                 (LabRawMessage, LabResultSet, LabObservation, WorklistItem)]
    assert after == before == [1, 1, 1, 1]
