"""The API contract: tokens, 401 everywhere, branch isolation, worklist shape and order."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.api.main import create_app
from hub.clock import utcnow
from hub.db.models import WorklistItem
from hub.db.session import session_scope
from hub.domain.priority import Priority
from hub.domain.worklist import ItemKind
from hub.intake import IntakeRules, NewItem, enqueue
from hub.services.patients import PatientRef
from tests.conftest import DEMO_PASSWORD, make_settings, seed_demo

pytestmark = pytest.mark.integration
RULES = IntakeRules({"stat": 30, "urgent": 120, "routine": 1440}, {"CT": "radiology"})
PUBLIC = {("/api/health", "get"), ("/api/auth/token", "post")}


@pytest.fixture
def api(tmp_path, db_url, orthanc):
    seed_demo(db_url)
    app = create_app(make_settings(tmp_path, db_url, orthanc))
    with TestClient(app) as client:
        client.db_url = db_url
        yield client


def login(api, username):
    r = api.post("/api/auth/token", data={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


def add_item(db_url, key, inst, kind=ItemKind.IMAGING, priority=Priority.ROUTINE, name="张三",
             received_ago=timedelta(0), modality="CT", critical=False):
    with session_scope(db_url) as s:
        item = enqueue(s, NewItem(kind=kind, natural_key=key, institution_code=inst,
                                  patient=PatientRef(f"{inst}-{key}", name), priority=priority,
                                  ready=True, modality=modality, is_critical=critical,
                                  received_at=utcnow() - received_ago), RULES)
        return item.id


def test_every_route_needs_a_token(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert len(paths) >= 10
    checked = 0
    for path, ops in paths.items():
        for method in ops:
            if (path, method) in PUBLIC or path.startswith("/verify"):
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            r = api.request(method.upper(), url)
            assert r.status_code == 401, f"{method.upper()} {path} answered {r.status_code}"
            r = api.request(method.upper(), url, headers={"Authorization": "Bearer nonsense"})
            assert r.status_code == 401, f"{method.upper()} {path} took a bad token"
            checked += 1
    assert checked >= 8


def test_health_names_each_component(api):
    body = api.get("/api/health").json()
    assert set(body["components"]) >= {"database", "orthanc", "broker"}
    assert body["components"]["database"]["state"] == "up"
    assert body["components"]["orthanc"]["state"] == "up"


def test_wrong_password_is_401_and_missing_field_is_422(api):
    r = api.post("/api/auth/token", data={"username": "dr.li", "password": "nope"})
    assert r.status_code == 401
    assert api.post("/api/auth/token", data={"username": "dr.li"}).status_code == 422


def test_worklist_contract_and_order(api):
    db = api.db_url
    routine = add_item(db, "1.2.1", "BR01")
    stat = add_item(db, "1.2.2", "BR02", priority=Priority.STAT, name="王小东")
    overdue = add_item(db, "1.2.3", "BR01", received_ago=timedelta(days=2))
    rows = api.get("/api/worklist", headers=login(api, "dr.li")).json()
    assert [r["id"] for r in rows] == [overdue, stat, routine]
    first = rows[1]
    for key in ("id", "kind", "status", "priority", "due_at", "institution", "patient"):
        assert key in first
    assert first["patient"]["name"] == "王小东" and first["patient"]["id"]
    assert first["institution"]["name"] == "青山乡卫生院"
    assert rows[0]["overdue"] is True


def test_worklist_filters(api):
    db = api.db_url
    add_item(db, "1.3.1", "BR01")
    add_item(db, "1.3.2", "BR02", priority=Priority.URGENT)
    h = login(api, "admin")
    assert [r["institution"]["code"] for r in
            api.get("/api/worklist", params={"institution": "BR02"}, headers=h).json()] == ["BR02"]
    assert len(api.get("/api/worklist", params={"priority": "urgent"}, headers=h).json()) == 1
    assert api.get("/api/worklist", params={"kind": "ecg"}, headers=h).json() == []
    assert api.get("/api/worklist", params={"kind": "xray"}, headers=h).status_code == 422
    assert api.get("/api/worklist", params={"limit": 0}, headers=h).status_code == 422


def test_branch_user_cannot_see_other_branch(api):
    db = api.db_url
    mine = add_item(db, "1.4.1", "BR01")
    theirs = add_item(db, "1.4.2", "BR02")
    h = login(api, "tech.br01")
    assert [r["id"] for r in api.get("/api/worklist", headers=h).json()] == [mine]
    assert api.get(f"/api/worklist/{theirs}", headers=h).status_code in (403, 404)
    assert api.get(f"/api/worklist/{mine}", headers=h).status_code == 200


def test_reader_sees_only_own_specialty(api):
    db = api.db_url
    add_item(db, "1.5.1", "BR01")
    ecg = add_item(db, "1.5.2", "BR01", kind=ItemKind.ECG, modality="ECG")
    rows = api.get("/api/worklist", headers=login(api, "dr.chen")).json()
    assert [r["id"] for r in rows] == [ecg]


def test_claim_release_and_conflict(api):
    item = add_item(api.db_url, "1.6.1", "BR01")
    li, zhao = login(api, "dr.li"), login(api, "dr.zhao")
    r = api.post(f"/api/worklist/{item}/claim", headers=li)
    assert r.status_code == 200 and r.json()["status"] == "in_progress"
    assert api.post(f"/api/worklist/{item}/claim", headers=zhao).status_code == 409
    assert api.post(f"/api/worklist/{item}/release", headers=zhao).status_code == 403
    assert api.post(f"/api/worklist/{item}/release", headers=li).json()["status"] == "ready"
    # Releasing a ready item is not a transition the table allows.
    assert api.post(f"/api/worklist/{item}/release", headers=li).status_code == 409


def test_unknown_item_is_404_and_bad_id_is_422(api):
    h = login(api, "admin")
    assert api.get("/api/worklist/999999", headers=h).status_code == 404
    assert api.get("/api/worklist/abc", headers=h).status_code == 422


def test_admin_creates_user_with_validation(api):
    h = login(api, "admin")
    ok = api.post("/api/users", headers=h, json={
        "username": "dr.wu", "password": "long-enough-1", "role": "radiologist",
        "institution_code": "LEAD"})
    assert ok.status_code == 201
    assert api.post("/api/users", headers=h, json={
        "username": "dr.wu", "password": "long-enough-1", "role": "radiologist",
        "institution_code": "LEAD"}).status_code == 409
    assert api.post("/api/users", headers=h, json={
        "username": "x", "password": "short", "role": "radiologist",
        "institution_code": "LEAD"}).status_code == 422
    assert api.post("/api/users", headers=h, json={
        "username": "y", "password": "long-enough-1", "role": "wizard",
        "institution_code": "LEAD"}).status_code == 422
    assert api.post("/api/users", headers=login(api, "dr.li"), json={
        "username": "z", "password": "long-enough-1", "role": "admin",
        "institution_code": "LEAD"}).status_code == 403


def test_patient_history_spans_institutions(api):
    from hub.services.patients import resolve_patient

    db = api.db_url
    with session_scope(db) as s:
        for inst, key, local in (("BR01", "1.7.1", "A1"), ("BR02", "1.7.2", "B7")):
            enqueue(s, NewItem(kind=ItemKind.IMAGING, natural_key=key, institution_code=inst,
                               patient=PatientRef(local, "李四", national_id="11010519491231002X"),
                               ready=True, modality="CT"), RULES)
        pid = resolve_patient(s, "BR01", PatientRef("A1")).id
    body = api.get(f"/api/patients/{pid}", headers=login(api, "doc.br01")).json()
    assert {h["institution"]["code"] for h in body["history"]} == {"BR01", "BR02"}
    assert api.get(f"/api/patients/{pid}", headers=login(api, "tech.br02")).status_code == 200
    with session_scope(db) as s:
        other = s.scalar(select(WorklistItem).where(WorklistItem.natural_key == "1.7.1"))
        assert other.patient_id == pid


def test_reads_are_audited(api):
    from hub.db.models import AuditEntry

    item = add_item(api.db_url, "1.8.1", "BR01")
    api.get(f"/api/worklist/{item}", headers=login(api, "dr.li"))
    with session_scope(api.db_url) as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "worklist.view")).all()
    assert [(r.username, r.target) for r in rows] == [("dr.li", f"worklist_item:{item}")]


def test_suggested_link_is_confirmed_by_a_person_then_history_is_one(api):
    from datetime import date

    db = api.db_url
    with session_scope(db) as s:
        for inst, key, local in (("BR01", "1.9.1", "A9"), ("BR02", "1.9.2", "B9")):
            enqueue(s, NewItem(kind=ItemKind.IMAGING, natural_key=key, institution_code=inst,
                               patient=PatientRef(local, "赵六", birth_date=date(1970, 1, 2),
                                                  sex="F"), ready=True, modality="CT"), RULES)
    h = login(api, "admin")
    suggestions = api.get("/api/patients/link-suggestions", headers=h).json()
    assert len(suggestions) == 1 and suggestions[0]["status"] == "open"
    sid, newer, older = (suggestions[0][k] for k in ("id", "patient_id", "candidate_id"))
    # Not merged until a person says so.
    assert len(api.get(f"/api/patients/{older}", headers=h).json()["history"]) == 1
    r = api.post(f"/api/patients/link-suggestions/{sid}", headers=h, json={"accept": True})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    merged = api.get(f"/api/patients/{older}", headers=h).json()
    assert {x["institution"]["code"] for x in merged["history"]} == {"BR01", "BR02"}
    assert {i["institution"] for i in merged["identifiers"]} == {"BR01", "BR02"}
    # The merged-away ID leads to the same person; deciding twice is a conflict.
    assert api.get(f"/api/patients/{newer}", headers=h).json()["id"] == older
    again = api.post(f"/api/patients/link-suggestions/{sid}", headers=h, json={"accept": False})
    assert again.status_code == 409
    assert api.post("/api/patients/link-suggestions/99999", headers=h,
                    json={"accept": True}).status_code == 404
    assert api.post(f"/api/patients/link-suggestions/{sid}", headers=h,
                    json={"accept": "maybe"}).status_code == 422


def test_manifest_and_origin_refuse_bad_input_and_change_nothing(api):
    from hub.db.models import StudyManifest, StudyOrigin

    tech = login(api, "tech.br01")
    good = {"institution_code": "BR01", "source_aet": "BR01-CT",
            "series": {"1.2.3.4": ["1.2.3.4.1", "1.2.3.4.2"]}}
    cases = [
        ("/api/studies/not-a-uid/manifest", tech, good, 422),
        ("/api/studies/1.2.3/manifest", tech, {**good, "institution_code": "BR02"}, 403),
        ("/api/studies/1.2.3/manifest", tech, {"institution_code": "BR01"}, 422),
        ("/api/studies/1.2.3/manifest", tech, {**good, "series": ["1.2.3.4.1"]}, 422),
        ("/api/studies/1.2.3/manifest", login(api, "dr.li"), good, 403),
    ]
    for url, headers, body, status in cases:
        r = api.post(url, headers=headers, json=body)
        assert r.status_code == status, (url, body, r.text)
        assert r.json()["detail"]
    r = api.put("/api/studies/1.2.3/origin", headers=tech,
                json={"institution_code": "BR02", "source_aet": "X"})
    assert r.status_code == 403
    r = api.put("/api/studies/1.2.3/origin", headers=tech, json={"source_aet": "X"})
    assert r.status_code == 422
    with session_scope(api.db_url) as s:
        assert s.scalars(select(StudyManifest)).all() == []
        assert s.scalars(select(StudyOrigin)).all() == []
    # The good manifest for a study Orthanc does not hold yet: accepted, waiting for it.
    r = api.post("/api/studies/1.2.3/manifest", headers=tech, json=good)
    assert r.status_code == 202 and r.json() == {"status": "receiving", "missing": 2}
