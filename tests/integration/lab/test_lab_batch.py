"""The batch write path records exactly what one-message transactions record.

The bridge group-commits frames from many connections in one transaction, and the batch code
takes shortcuts (one statement per table, keys claimed within the batch). Here the same frames,
covering every branch of that code, are recorded three ways on fresh databases: one per
transaction, all in one batch, and in batches of three. The resulting rows, compared through
their natural keys, must be identical, and must hold what each case should produce.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub.config import Settings
from hub.db.lab_models import (
    LabCriticalAlert,
    LabObservation,
    LabObservationHistory,
    LabOrder,
    LabRawMessage,
    LabResultSet,
)
from hub.db.models import (
    Institution,
    Patient,
    PatientIdentifier,
    PatientLinkSuggestion,
    WorklistItem,
)
from hub.db.session import get_sessionmaker, session_scope
from hub.domain.lab_rules import parse_ranges
from hub.intake import IntakeRules
from hub.services.lab import InstitutionMap, LabRules, Recorded, record_batch
from lis_bridge.config import LisSettings
from lis_bridge.server import FramePreparer
from tests.conftest import make_database

RECEIVED = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 0, 31, tzinfo=UTC)


def hl7(control_id: str, pid3: str, name: str, born: str, sex: str, *groups: str,
        facility: str = "BRANCH1", msg_type: str = "ORU^R01^ORU_R01") -> bytes:
    segs = [f"MSH|^~\\&|LIS|{facility}|YIGONG|HUB|20261126080000||{msg_type}|{control_id}|P|2.5.1"
            "||||||UNICODE UTF-8",
            f"PID|1||{pid3}||{name}||{born}|{sex}", *groups]
    return ("\r".join(segs) + "\r").encode("utf-8")


def obr(filler: str, placer: str = "", status: str = "F", service: str = "CHEM^生化^L") -> str:
    return (f"OBR|1|{placer}|{filler}^LIS|{service}|||20261126073000|||||||||||||||"
            f"20261126075500|||{status}")


def obx(n: int, code: str, value: str, flags: str = "N", status: str = "F", sub: str = "") -> str:
    return f"OBX|{n}|NM|{code}^{code}^L|{sub}|{value}|mmol/L|3.5-5.5|{flags}|||{status}"


NI = "110101199003077777"
FRAMES = [
    # T1: a new patient known by local ID only.
    hl7("T1", "L100^^^BRANCH1^MR", "张^三", "19700101", "M",
        obr("FA"), obx(1, "K", "4.1"), obx(2, "NA", "140")),
    # T2: the same patient again, under another filler number.
    hl7("T2", "L100^^^BRANCH1^MR", "张^三", "19700101", "M", obr("FB"), obx(1, "GLU", "5.0")),
    # T3 and T4: one person (national ID) under two local IDs.
    hl7("T3", f"L200^^^BRANCH1^MR~{NI}^^^CHN^NI", "李^四", "19900307", "F",
        obr("FC"), obx(1, "K", "3.9")),
    hl7("T4", f"L201^^^BRANCH1^MR~{NI}^^^CHN^NI", "李^四", "19900307", "F",
        obr("FD"), obx(1, "K", "4.0")),
    # T5: an insurance number; T6: no identifier at all.
    hl7("T5", "L300^^^BRANCH1^MR~INS555^^^^HC", "王^五", "19851212", "M",
        obr("FE"), obx(1, "K", "4.2")),
    hl7("T6", "", "无名^氏", "19800101", "F", obr("FF"), obx(1, "K", "4.3")),
    # T7: corrects T1's potassium (OBX-11 C): history must keep 4.1.
    hl7("T7", "L100^^^BRANCH1^MR", "张^三", "19700101", "M",
        obr("FA", status="C"), obx(1, "K", "4.4", status="C"), obx(2, "NA", "140")),
    # T1 re-sent: the same ACK, nothing new.
    b"",
    # T9: a critical potassium.
    hl7("T9", "L400^^^BRANCH1^MR", "赵^九", "19450909", "M",
        obr("FG"), obx(1, "K", "7.2", flags="HH")),
    # T10: one OBR repeating an observation key (the second value replaces the first).
    hl7("T10", "L401^^^BRANCH1^MR", "钱^十", "19500101", "F",
        obr("FI"), obx(1, "GLU", "5.0"), obx(2, "GLU", "5.5")),
    # T11: an order from the HIS; T12: its result, matched by placer number.
    hl7("T11", "L500^^^BRANCH1^MR", "孙^十一", "19650505", "M",
        "ORC|NW|PO1^HIS", "OBR|1|PO1^HIS||CHEM^生化^L", msg_type="OML^O21^OML_O21"),
    hl7("T12", "L500^^^BRANCH1^MR", "孙^十一", "19650505", "M",
        obr("FH", placer="PO1^HIS"), obx(1, "K", "4.5")),
    # T13: a facility nobody configured.
    hl7("T13", "Z1^^^ZZ^MR", "周^十三", "19700313", "F", obr("FJ"), obx(1, "K", "4.1"),
        facility="ZZBRANCH"),
    # T14 and T15: two local IDs, same name, birth date and sex: a suggested link.
    hl7("T14", "L600^^^BRANCH1^MR", "吴^六", "19550505", "F", obr("FK"), obx(1, "K", "4.1")),
    hl7("T15", "L601^^^BRANCH1^MR", "吴^六", "19550505", "F", obr("FL"), obx(1, "K", "4.1")),
    # T16: not a number in an NM value: AE, nothing stored but the raw frame.
    hl7("T16", "L700^^^BRANCH1^MR", "郑^十六", "19600101", "M", obr("FM"), obx(1, "K", "abc")),
]
FRAMES[7] = FRAMES[0]


def _record(url: str, frames: list[bytes], batch_size: int) -> list[Recorded]:
    lis = LisSettings()
    preparer = FramePreparer(lis)
    rules = LabRules(IntakeRules.from_settings(Settings()), parse_ranges(lis.critical_ranges))
    institutions = InstitutionMap()
    inbounds = [preparer.prepare(f, "test", RECEIVED) for f in frames]
    sessions = get_sessionmaker(url)
    out: list[Recorded] = []
    for start in range(0, len(inbounds), batch_size):
        with sessions() as session, session.begin():
            out += record_batch(session, inbounds[start:start + batch_size], rules, institutions,
                                now=NOW)
    return out


def _snapshot(url: str) -> dict[str, list[Any]]:
    """Every row the lab path writes, with ids replaced by the natural keys they point at."""
    with session_scope(url) as s:
        idents: dict[int, list[tuple[str, str]]] = {}
        for ident in s.scalars(select(PatientIdentifier)):
            idents.setdefault(ident.patient_id, []).append((ident.institution_code,
                                                            ident.local_id))
        patients = {p.id: (p.name, str(p.birth_date), p.sex, p.national_id, p.insurance_no,
                           tuple(sorted(idents.get(p.id, []))))
                    for p in s.scalars(select(Patient))}
        raws = {r.id: (r.sending_facility, r.control_id) for r in s.scalars(select(LabRawMessage))}
        items = {i.id: i.natural_key for i in s.scalars(select(WorklistItem))}
        orders = {o.id: o.placer_order_number for o in s.scalars(select(LabOrder))}
        sets = {r.id: (r.sending_facility, r.filler_order_number, r.service_code)
                for r in s.scalars(select(LabResultSet))}
        observations = {o.id: (sets[o.result_set_id], o.code, o.sub_id)
                        for o in s.scalars(select(LabObservation))}
        snap = {
            "patients": sorted(patients.values()),
            "suggestions": sorted((patients[x.patient_id], patients[x.candidate_id], x.status)
                                  for x in s.scalars(select(PatientLinkSuggestion))),
            "raw": sorted((r.sending_facility or "", r.control_id or "", r.message_type or "",
                           r.institution_code or "", r.charset or "", r.size, r.ack_code,
                           r.error_location or "", r.error_code or 0, r.error_text or "")
                          for r in s.scalars(select(LabRawMessage))),
            "worklist": sorted((
                i.kind, i.natural_key, i.status, i.priority, i.priority_rank, i.specialty,
                i.institution_code, patients.get(i.patient_id), i.patient_local_id or "",
                i.patient_name, i.accession_number or "", i.description or "", i.is_critical,
                i.critical_reason or "", json.dumps(sorted(i.flags)),
                json.dumps(i.details, sort_keys=True, ensure_ascii=False), str(i.due_at))
                for i in s.scalars(select(WorklistItem))),
            "result_sets": sorted((
                sets[r.id], r.institution_code, items[r.worklist_item_id],
                orders.get(r.order_id, ""), patients.get(r.patient_id), r.placer_order_number,
                r.result_status, r.priority, r.specimen_barcode or "", r.is_critical,
                json.dumps(r.notes, ensure_ascii=False), raws[r.raw_message_id])
                for r in s.scalars(select(LabResultSet))),
            "observations": sorted((
                observations[o.id], o.set_id, o.value_type, o.value, o.numeric_value, o.units,
                o.reference_range, json.dumps(o.abnormal_flags), o.result_status, o.is_critical,
                o.version, raws[o.raw_message_id])
                for o in s.scalars(select(LabObservation))),
            "history": sorted((observations[h.observation_id], h.version, h.value,
                               raws[h.raw_message_id], raws[h.replaced_by_message_id])
                              for h in s.scalars(select(LabObservationHistory))),
            "alerts": sorted((observations[a.observation_id], items[a.worklist_item_id],
                              a.test_code, a.value, a.reason, a.status)
                             for a in s.scalars(select(LabCriticalAlert))),
            "orders": sorted((o.placer_order_number, o.service_code, o.filler_order_number or "",
                              o.status, patients.get(o.patient_id), raws[o.raw_message_id])
                             for o in s.scalars(select(LabOrder))),
        }
    return snap


@pytest.fixture(params=["sqlite", "postgresql"])
def three_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    gens = [make_database(request.param, tmp_path / str(n)) for n in range(3)]
    urls = []
    for n, gen in enumerate(gens):
        (tmp_path / str(n)).mkdir()
        urls.append(next(gen))
        with session_scope(urls[-1]) as s:
            s.add(Institution(code="BR01", name="一号分院", hl7_facilities=["BRANCH1"]))
    yield urls
    for gen in gens:
        next(gen, None)


def test_batch_records_what_single_transactions_record(three_databases: list[str],
                                                        testdata: Path) -> None:
    samples = [f.read_bytes() for f in sorted((testdata / "hl7").rglob("*.hl7"))]
    frames = FRAMES + samples
    singles, whole, threes = (_record(url, frames, size)
                              for url, size in zip(three_databases, (1, len(frames), 3),
                                                   strict=True))
    codes = [r.ack_code for r in singles]
    assert [r.ack_code for r in whole] == codes == [r.ack_code for r in threes]
    assert codes[:16] == ["AA"] * 15 + ["AE"]
    assert [r.is_duplicate for r in whole][:8] == [False] * 7 + [True]
    snaps = [_snapshot(url) for url in three_databases]
    for table in snaps[0]:
        assert snaps[1][table] == snaps[0][table], f"one batch differs in {table}"
        assert snaps[2][table] == snaps[0][table], f"batches of three differ in {table}"

    snap = snaps[0]
    # What each case must have produced, so the comparison above is not of two empty sets.
    li4 = [p for p in snap["patients"] if p[0] == "李四"]
    assert len(li4) == 1 and li4[0][3] == NI
    assert li4[0][5] == (("BR01", "L200"), ("BR01", "L201"))
    assert [p for p in snap["patients"] if p[4] == "INS555"]
    assert [h[2] for h in snap["history"] if h[0][0][1] == "FA^LIS" and h[0][1] == "K"] == ["4.1"]
    assert [(a[2], a[3]) for a in snap["alerts"]] == [("K", "7.2")]
    assert [o[3] for o in snap["orders"] if o[0] == "PO1^HIS"] == ["resulted"]
    assert [r[3] for r in snap["result_sets"] if r[0][1] == "FH^LIS"] == ["PO1^HIS"]
    assert ("吴六", "吴六") in [(s[0][0], s[1][0]) for s in snap["suggestions"]]
    glu = [o for o in snap["observations"] if o[0][0][1] == "FI^LIS"]
    assert [(o[3], o[10]) for o in glu] == [("5.5", 2)]
    flags = {w[1]: json.loads(w[14]) for w in snap["worklist"]}
    assert "missing patient ID" in flags["BRANCH1|FF^LIS"]
    assert any("unknown institution" in f for f in flags["ZZBRANCH|FJ^LIS"])
