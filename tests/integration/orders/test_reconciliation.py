"""A study sent without an accession lands on the reconciliation list; fixing it moves it to the
right patient in the hub and in Orthanc, in place, with the history in the audit trail.
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from hub.db.models import AuditEntry, WorklistItem
from hub.db.session import session_scope
from hub.demo import synthetic_ct
from hub.demo.run import send_datasets
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _order(server, headers, name: str, local_id: str, **extra) -> dict:
    r = requests.post(server.url + "/api/orders", headers=headers, timeout=10, json={
        "patient": {"local_id": local_id, "name": name, "birth_date": "1958-04-02",
                    "sex": "F"},
        "modality": "CT", "procedure_code": "CT-HEAD", "procedure_name": "头颅CT平扫",
        "priority": "urgent", "reason": "头晕三天", **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_unmatched_study_is_reconciled_in_the_hub_and_in_orthanc(hub_on_db, orthanc,
                                                                 orthanc_client):
    server = hub_on_db
    tech, admin = server.headers("tech.br01"), server.headers("admin")
    order = _order(server, tech, "李^秀英", "BR01-000200")
    assert order["accession_number"].startswith("YG") and order["status"] == "scheduled"

    # The technician typed the patient by hand: wrong ID, no accession.
    study = synthetic_ct(slices=3, name="Li^XiuYing=李^秀英", patient_id="TYPO-1")
    for ds in study:
        ds.AccessionNumber = ""
        ds.BodyPartExamined = "HEAD"
    uid = str(study[0].StudyInstanceUID)
    assert send_datasets(study, orthanc.config.dicom_port, "YIGONG", "BR01-CT") == 3
    old_orthanc_id = wait_for(lambda: orthanc_client.lookup_study(uid), what="study in Orthanc")

    def listed():
        rows = requests.get(server.url + "/api/reconciliation", headers=tech, timeout=10).json()
        return next((r for r in rows if r["study_instance_uid"] == uid), None)

    row = wait_for(listed, timeout=60, what="the study on the reconciliation list")
    assert row["reason"] == "no accession number" and row["patient_local_id"] == "TYPO-1"
    item_id = row["item_id"]

    # Bad input first: each refused, nothing changed.
    url = f"{server.url}/api/reconciliation/{item_id}"
    assert requests.post(url, headers=tech, json={}, timeout=10).status_code == 422
    both = {"order_id": order["id"], "patient_id": 1}
    assert requests.post(url, headers=tech, json=both, timeout=10).status_code == 422
    assert requests.post(url, headers=tech, json={"order_id": 99999},
                         timeout=10).status_code == 404
    assert requests.post(url, headers=server.headers("tech.br02"),
                         json={"order_id": order["id"]}, timeout=10).status_code == 404
    assert requests.post(url, headers=server.headers("doc.br01"),
                         json={"order_id": order["id"]}, timeout=10).status_code == 403
    cancelled = _order(server, tech, "李^秀英", "BR01-000200", placer_order_number="X-1")
    r = requests.post(f"{server.url}/api/orders/{cancelled['id']}/cancel", headers=tech,
                      json={"reason": "重复申请"}, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert requests.post(url, headers=tech, json={"order_id": cancelled["id"]},
                         timeout=10).status_code == 409
    assert orthanc_client.lookup_study(uid) == old_orthanc_id

    # The fix: link the study to its order.
    r = requests.post(url, headers=tech, json={"order_id": order["id"]}, timeout=60)
    assert r.status_code == 200, r.text
    fixed = r.json()
    assert fixed["patient_local_id"] == "BR01-000200"
    assert fixed["accession_number"] == order["accession_number"]
    assert fixed["priority"] == "urgent" and fixed["order_id"] == order["id"]

    # Orthanc: same Study Instance UID, now under the right patient; the original is gone.
    new_id = orthanc_client.lookup_study(uid)
    assert new_id and new_id != old_orthanc_id and new_id == fixed["orthanc_id"]
    tags = orthanc_client.study(new_id)
    assert tags["PatientMainDicomTags"]["PatientID"] == "BR01-000200"
    assert tags["MainDicomTags"]["AccessionNumber"] == order["accession_number"]
    assert tags["MainDicomTags"]["StudyInstanceUID"] == uid
    assert len(orthanc_client.study_instances(new_id)) == 3
    assert old_orthanc_id not in orthanc_client.get_json("/studies")
    assert orthanc_client.get_json("/patients") and all(
        orthanc_client.get_json(f"/patients/{p}")["MainDicomTags"]["PatientID"] != "TYPO-1"
        for p in orthanc_client.get_json("/patients"))

    # The change feed sees the rewritten study: still one item, updated in place.
    def settled():
        with session_scope(server.db_url) as s:
            items = s.scalars(select(WorklistItem).where(
                WorklistItem.natural_key == uid)).all()
            return items if len(items) == 1 and items[0].orthanc_id == new_id else None

    [item] = wait_for(settled, timeout=30, what="the item to follow the rewritten study")
    assert item.id == item_id and item.patient_local_id == "BR01-000200"
    assert item.details["order"]["id"] == order["id"]
    rows = requests.get(server.url + "/api/reconciliation", headers=tech, timeout=10).json()
    assert all(r["item_id"] != item_id for r in rows)
    got = requests.get(f"{server.url}/api/orders/{order['id']}", headers=admin, timeout=10)
    assert got.json()["status"] == "received" and got.json()["worklist_item_id"] == item_id
    with session_scope(server.db_url) as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "study.reconcile"))
        assert entry.detail["before"]["patient_local_id"] == "TYPO-1"
        assert entry.detail["after"]["patient_local_id"] == "BR01-000200"
        assert entry.detail["before"]["orthanc_id"] == old_orthanc_id

    # An order that has its study cannot take a second one.
    other = synthetic_ct(slices=1, patient_id="TYPO-2")
    for ds in other:
        ds.AccessionNumber = ""
    send_datasets(other, orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    uid2 = str(other[0].StudyInstanceUID)
    row2 = wait_for(lambda: next((r for r in requests.get(
        server.url + "/api/reconciliation", headers=tech, timeout=10).json()
        if r["study_instance_uid"] == uid2), None), timeout=60, what="second study listed")
    r = requests.post(f"{server.url}/api/reconciliation/{row2['item_id']}", headers=tech,
                      json={"order_id": order["id"]}, timeout=10)
    assert r.status_code == 409


def test_a_study_quoting_an_order_accession_is_matched_without_a_person(hub_on_db, orthanc,
                                                                        orthanc_client):
    server = hub_on_db
    tech = server.headers("tech.br01")
    order = _order(server, tech, "赵^敏", "BR01-000300")
    study = synthetic_ct(slices=2, name="赵^敏", patient_id="BR01-000300")
    for ds in study:
        ds.AccessionNumber = order["accession_number"]
    send_datasets(study, orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    got = wait_for(lambda: (lambda o: o if o["status"] == "received" else None)(
        requests.get(f"{server.url}/api/orders/{order['id']}", headers=tech,
                     timeout=10).json()), timeout=60, what="the order to be received")
    item = requests.get(f"{server.url}/api/worklist/{got['worklist_item_id']}", headers=tech,
                        timeout=10).json()
    assert item["priority"] == "urgent" and item["accession_number"] == order["accession_number"]
    rows = requests.get(server.url + "/api/reconciliation", headers=tech, timeout=10).json()
    assert all(r["item_id"] != item["id"] for r in rows)


def test_a_study_moved_to_a_known_patient_without_an_order(hub_on_db, orthanc, orthanc_client):
    server = hub_on_db
    tech = server.headers("tech.br01")
    # The patient is known at the hub (an earlier order made the MPI link).
    known = _order(server, tech, "周^芳", "BR01-000400")
    study = synthetic_ct(slices=2, name="Zhou^Fang", patient_id="")
    for ds in study:
        ds.AccessionNumber = ""
    uid = str(study[0].StudyInstanceUID)
    send_datasets(study, orthanc.config.dicom_port, "YIGONG", "BR01-CT")
    row = wait_for(lambda: next((r for r in requests.get(
        server.url + "/api/reconciliation", headers=tech, timeout=10).json()
        if r["study_instance_uid"] == uid), None), timeout=60, what="study listed")
    assert row["patient_id"] is None  # no patient ID at all: nobody to attach it to
    r = requests.post(f"{server.url}/api/reconciliation/{row['item_id']}", headers=tech,
                      json={"patient_id": 999999}, timeout=10)
    assert r.status_code == 404
    r = requests.post(f"{server.url}/api/reconciliation/{row['item_id']}", headers=tech,
                      json={"patient_id": known["patient_id"]}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["patient_id"] == known["patient_id"] and r.json()["order_id"] is None
    new_id = orthanc_client.lookup_study(uid)
    assert orthanc_client.study(new_id)["PatientMainDicomTags"]["PatientID"] == "BR01-000400"
    # The order stays scheduled: moving a study to a patient does not use up their order.
    got = requests.get(f"{server.url}/api/orders/{known['id']}", headers=tech, timeout=10)
    assert got.json()["status"] == "scheduled"
