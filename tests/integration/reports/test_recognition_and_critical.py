"""Mutual recognition across institutions, repeat-order reasons and statistics; critical-value
escalation with time as an argument (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub import audit
from hub.clock import utcnow
from hub.db.lab_models import LabCriticalAlert, LabObservation, LabRawMessage, LabResultSet
from hub.db.report_models import Report
from hub.db.session import session_scope
from hub.domain.access import Scope
from hub.domain.worklist import ItemKind
from hub.services import critical
from tests.integration.reports.conftest import add_item, login, write_and_submit

pytestmark = pytest.mark.integration

NATIONAL_ID = "11010519491231002X"


def set_qc(api, institution, start, end):
    r = api.put(f"/api/recognition/qc/{institution}", headers=login(api, "admin"),
                json={"valid_from": start.isoformat(), "valid_until": end.isoformat()})
    assert r.status_code == 200, r.text


def final_report(api, key, inst, received_ago=timedelta(minutes=5)):
    item_id, patient_id = add_item(api.db_url, key, inst=inst, national_id=NATIONAL_ID,
                                   patient_local_id=f"{inst}-P1", received_ago=received_ago)
    write_and_submit(api, item_id)
    r = api.post(f"/api/worklist/{item_id}/report/verify", headers=login(api, "dr.zhao"))
    assert r.status_code == 200, r.text
    return r.json(), patient_id


def test_recognised_result_is_found_by_another_institutions_clinician(report_api):
    api = report_api
    now = utcnow()
    set_qc(api, "BR01", now - timedelta(days=400), now + timedelta(days=200))
    # BR02's QC lapsed yesterday: its results no longer carry the mark.
    set_qc(api, "BR02", now - timedelta(days=400), now - timedelta(days=1))
    in_window, patient_id = final_report(api, "9.1", "BR01")
    assert in_window["recognised"] is True
    lapsed, same_patient = final_report(api, "9.2", "BR02")
    assert same_patient == patient_id and lapsed["recognised"] is False
    old, _ = final_report(api, "9.3", "BR01", received_ago=timedelta(days=200))
    assert old["recognised"] is False  # outside CT-HEAD's 180 days already when signed

    # A clinician of BR02 (another institution than BR01) asks before ordering a head CT.
    clinician = login(api, "tech.br02")
    r = api.get(f"/api/patients/{patient_id}/recognised?item=CT-HEAD", headers=clinician)
    assert r.status_code == 200, r.text
    found = r.json()
    assert [x["report_id"] for x in found] == [in_window["id"]]
    assert found[0]["institution"] == "BR01" and found[0]["institution_name"] == "城关镇卫生院"
    # ...and may open the recognised PDF even though the item belongs to BR01.
    assert api.get(found[0]["pdf_url"], headers=clinician).status_code == 200
    # A report that is not recognised stays inside its own institution's scope.
    assert api.get(f"/api/reports/{old['id']}/pdf", headers=clinician).status_code == 404

    # Asked again 181 days later, nothing is recognised any more.
    later = (utcnow() + timedelta(days=181)).isoformat().replace("+00:00", "Z")
    assert api.get(f"/api/patients/{patient_id}/recognised",
                   params={"item": "CT-HEAD", "at": later}, headers=clinician).json() == []

    # Ordered again anyway, with a coded reason; counted in the statistics.
    bad = api.post("/api/orders/repeat-reason", headers=clinician, json={
        "patient_id": patient_id, "item_code": "CT-HEAD", "reason": "other"})
    assert bad.status_code == 422
    assert api.post("/api/orders/repeat-reason", headers=clinician, json={
        "patient_id": patient_id, "item_code": "CT-HEAD", "reason": "because"}).status_code == 422
    ok = api.post("/api/orders/repeat-reason", headers=clinician, json={
        "patient_id": patient_id, "item_code": "CT-HEAD", "reason": "condition_changed",
        "recognised_report_id": in_window["id"]})
    assert ok.status_code == 201, ok.text
    api.get(f"/api/patients/{patient_id}/recognised?item=CT-HEAD", headers=clinician)
    month = utcnow().strftime("%Y-%m")
    stats = api.get(f"/api/stats/recognition?month={month}", headers=clinician).json()
    br01 = next(s for s in stats if s["institution"] == "BR01")
    br02 = next(s for s in stats if s["institution"] == "BR02")
    assert br01["recognised_results"] == 1
    assert (br02["lookups_with_results"], br02["repeat_orders"], br02["repeats_avoided"]) == \
        (2, 1, 1)
    assert br02["by_reason"] == {"condition_changed": 1}
    with session_scope(api.db_url) as s:
        assert s.scalar(select(Report.recognition_code).where(
            Report.id == in_window["id"])) == "CT-HEAD"


def _lab_alert(db_url, raised_at):
    """A critical potassium as the LIS bridge stores it (rows of the lab part's tables)."""
    item_id, patient_id = add_item(db_url, "LAB-K-1", kind=ItemKind.LAB, modality=None,
                                   body_part=None)
    with session_scope(db_url) as s:
        raw = LabRawMessage(received_at=raised_at, raw=b"MSH|", ack_code="AA", ack=b"", size=4)
        s.add(raw)
        s.flush()
        rs = LabResultSet(sending_facility="BR01HIS", institution_code="BR01",
                          worklist_item_id=item_id, patient_id=patient_id,
                          filler_order_number="F1", service_code="CHEM", result_status="F",
                          priority="stat", raw_message_id=raw.id, created_at=raised_at,
                          updated_at=raised_at, is_critical=True)
        s.add(rs)
        s.flush()
        obs = LabObservation(result_set_id=rs.id, code="K", name="钾", value="7.1",
                             numeric_value=7.1, units="mmol/L", result_status="F",
                             raw_message_id=raw.id, updated_at=raised_at, is_critical=True)
        s.add(obs)
        s.flush()
        alert = LabCriticalAlert(observation_id=obs.id, result_set_id=rs.id,
                                 worklist_item_id=item_id, institution_code="BR01",
                                 patient_id=patient_id, test_code="K", value="7.1",
                                 units="mmol/L", reason="K 7.1 > 6.2", status="open",
                                 raised_at=raised_at)
        s.add(alert)
        s.flush()
        return f"lab:{alert.id}", item_id


def test_unacknowledged_critical_lab_value_escalates_in_time(report_api):
    api = report_api
    t0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    alert_id, _ = _lab_alert(api.db_url, t0)
    with session_scope(api.db_url) as s:
        assert critical.escalate_due(s, t0 + timedelta(minutes=9), 10, 3) == []
        first = critical.escalate_due(s, t0 + timedelta(minutes=10), 10, 3)
        assert [(a.id, a.escalation_level, a.status) for a in first] == [(alert_id, 1,
                                                                          "escalated")]
        # The same minute again does not page twice; twenty minutes on it goes up a level.
        assert critical.escalate_due(s, t0 + timedelta(minutes=11), 10, 3) == []
        assert critical.escalate_due(s, t0 + timedelta(minutes=21), 10, 3)[0].escalation_level \
            == 2
    # The ordering clinician acknowledges in the app; nothing escalates after that.
    r = api.post(f"/api/critical-alerts/{alert_id}/ack", headers=login(api, "doc.br01"))
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] == "doc.br01" and r.json()["escalation_level"] == 2
    with session_scope(api.db_url) as s:
        assert critical.escalate_due(s, t0 + timedelta(hours=5), 10, 3) == []
        log = critical.list_alerts(s, Scope(None, None), source="lab")
        assert log[0].acknowledged_at is not None and log[0].what == "K 7.1 mmol/L"


def test_acknowledged_in_time_is_never_escalated(report_api):
    api = report_api
    t0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    alert_id, _ = _lab_alert(api.db_url, t0)
    with session_scope(api.db_url) as s:
        critical.acknowledge(s, alert_id, "doc.br01", audit.SYSTEM, t0 + timedelta(minutes=3))
        assert critical.escalate_due(s, t0 + timedelta(minutes=30), 10, 3) == []
