"""Orders over the API (issue 8): placing, access rules, the node's worklist feed, priors, and
bad input refused with nothing changed. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.integration.reports.conftest import add_item, login, snapshot, write_and_submit

pytestmark = pytest.mark.integration

ORDER = {"patient": {"local_id": "BR01-000500", "name": "王^建国", "birth_date": "1950-01-02",
                     "sex": "M"},
         "modality": "CT", "procedure_code": "CT-HEAD", "procedure_name": "头颅CT平扫",
         "scheduled_at": "2026-11-26T02:00:00Z", "priority": "stat", "reason": "突发头痛",
         "ordering_clinician": "D01^刘^医生", "scheduled_station_aet": "BR01-CT"}


def test_a_branch_places_an_order_and_its_node_sees_it(report_api):
    c = report_api
    tech = login(c, "tech.br01")
    r = c.post("/api/orders", json=ORDER, headers=tech)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["institution"] == "BR01" and order["status"] == "scheduled"
    assert order["body_part"] == "HEAD" and order["kind"] == "imaging"
    assert order["accession_number"] == f"YG{order['id']:08d}"
    assert order["placer_order_number"].startswith("API-")
    feed = c.get("/api/orders/worklist", params={"institution": "BR01"}, headers=tech).json()
    [entry] = feed["entries"]
    assert entry["patient_name"] == "王^建国" and entry["accession_number"] == \
        order["accession_number"]
    assert entry["referring_physician"] == "刘^医生" and entry["priority"] == "stat"
    # Another branch's technician and a clinician may not read BR01's feed.
    assert c.get("/api/orders/worklist", params={"institution": "BR01"},
                 headers=login(c, "tech.br02")).status_code == 403
    assert c.get("/api/orders/worklist", params={"institution": "BR01"},
                 headers=login(c, "doc.br01")).status_code == 403
    assert c.get("/api/orders/worklist", params={"institution": "BR01"}).status_code == 401
    assert c.get("/api/orders/worklist", params={"institution": "BR01"},
                 headers=login(c, "admin")).status_code == 200
    # Orders are visible in their institution only.
    assert c.get(f"/api/orders/{order['id']}", headers=login(c, "tech.br02")).status_code == 404
    assert [o["id"] for o in c.get("/api/orders", headers=login(c, "doc.br01")).json()] == \
        [order["id"]]
    # A clinician of the branch may order too; cancelling takes it off the worklist.
    r = c.post(f"/api/orders/{order['id']}/cancel", json={"reason": "患者拒绝"},
               headers=login(c, "doc.br01"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert c.get("/api/orders/worklist", params={"institution": "BR01"},
                 headers=tech).json()["entries"] == []


def test_bad_orders_are_refused_and_change_nothing(report_api):
    c = report_api
    tech = login(c, "tech.br01")
    assert c.post("/api/orders", json={**ORDER, "placer_order_number": "P-1"},
                  headers=tech).status_code == 201
    cases = [
        ({**ORDER, "placer_order_number": "P-1"}, tech, 409),                 # duplicate placer
        ({**ORDER, "patient": {"name": "无名氏"}}, tech, 422),                 # no identifier
        ({**ORDER, "accession_number": "A\\B"}, tech, 422),                   # not DICOM SH
        ({**ORDER, "modality": ""}, tech, 422),                               # no modality
        ({**ORDER, "priority": "whenever"}, tech, 422),                       # bad priority
        ({**ORDER, "institution": "BR02"}, tech, 403),                        # other branch
        (ORDER, login(c, "dr.li"), 403),                                      # a reader
    ]
    for body, headers, code in cases:
        before = snapshot(c.db_url)
        r = c.post("/api/orders", json=body, headers=headers)
        assert r.status_code == code, (body, r.text)
        # The refused request may have audited the login, nothing else.
        after = snapshot(c.db_url)
        assert {k: v for k, v in after.items() if k != "audit_log"} == \
            {k: v for k, v in before.items() if k != "audit_log"}
    assert c.post("/api/orders/99999/cancel", json={}, headers=tech).status_code == 404


def test_priors_of_the_same_region_are_offered_when_an_order_arrives(report_api):
    c = report_api
    admin = login(c, "admin")
    r = c.put("/api/recognition/qc/BR02", headers=admin, json={
        "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-12-31T00:00:00Z",
        "note": "年度质控"})
    assert r.status_code == 200, r.text
    # A head CT of the same patient done at another branch, read and signed.
    item_id, patient_id = add_item(c.db_url, "prior-head", inst="BR02", body_part="HEAD",
                                   national_id="110101195001020011")
    write_and_submit(c, item_id)
    assert c.post(f"/api/worklist/{item_id}/report/verify",
                  headers=login(c, "dr.zhao")).status_code == 200
    # A chest CT of the same patient: not the same region, not offered.
    chest_id, _ = add_item(c.db_url, "prior-chest", inst="BR02", body_part="CHEST",
                           national_id="110101195001020011")

    tech = login(c, "tech.br01")
    body = {**ORDER, "patient": {**ORDER["patient"], "national_id": "110101195001020011"}}
    order = c.post("/api/orders", json=body, headers=tech).json()
    assert order["patient_id"] == patient_id
    priors = c.get(f"/api/orders/{order['id']}/priors", headers=tech)
    assert priors.status_code == 200, priors.text
    [prior] = priors.json()
    assert prior["item_code"] == "CT-HEAD" and prior["institution"] == "BR02"
    assert prior["item_id"] == item_id and prior["still_valid"] and prior["report_id"]
    assert all(p["item_id"] != chest_id for p in priors.json())
