"""GET /api/auth/me: who the token belongs to and what their role allows, as the hub enforces it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hub.api.main import create_app
from hub.demo import USERS
from tests.conftest import DEMO_PASSWORD, make_settings, seed_demo

pytestmark = pytest.mark.integration


@pytest.fixture
def api(tmp_path, db_url, orthanc):
    seed_demo(db_url)
    app = create_app(make_settings(tmp_path, db_url, orthanc))
    with TestClient(app) as client:
        yield client


def login(api, username, password=DEMO_PASSWORD):
    r = api.post("/api/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_me_needs_a_valid_token(api):
    assert api.get("/api/auth/me").status_code == 401
    bad = api.get("/api/auth/me", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith("application/json")


def test_me_is_documented_in_openapi(api):
    op = api.get("/openapi.json").json()["paths"]["/api/auth/me"]["get"]
    assert op["summary"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Me")


def test_reader_sees_name_role_institution_and_report_capabilities(api):
    body = api.get("/api/auth/me", headers=login(api, "dr.li")).json()
    assert body == {
        "username": "dr.li", "display_name": "李放射", "role": "radiologist", "rank": "attending",
        "institution_code": "LEAD", "institution_name": body["institution_name"],
        "is_lead": True, "capabilities": ["order.reconcile", "report.write", "report.verify",
                                          "report.critical"],
    }
    assert body["institution_name"]


def test_branch_technician_may_order_but_not_report(api):
    body = api.get("/api/auth/me", headers=login(api, "tech.br01")).json()
    assert (body["role"], body["institution_code"], body["is_lead"]) == ("technician", "BR01",
                                                                         False)
    assert "order.write" in body["capabilities"]
    assert not [c for c in body["capabilities"] if c.startswith("report.")]
    assert "admin" not in body["capabilities"]


def test_resident_writes_but_does_not_verify_and_empty_display_name_is_null(api):
    made = api.post("/api/users", headers=login(api, "admin"), json={
        "username": "dr.res", "password": "long-enough-1", "role": "radiologist",
        "institution_code": "LEAD", "rank": "resident"})
    assert made.status_code == 201, made.text
    body = api.get("/api/auth/me", headers=login(api, "dr.res", "long-enough-1")).json()
    assert body["display_name"] is None
    assert body["rank"] == "resident"
    assert "report.write" in body["capabilities"]
    assert "report.verify" not in body["capabilities"]


@pytest.mark.parametrize("username", [u[0] for u in USERS])
def test_capabilities_match_what_the_hub_enforces(api, username):
    """The list is the hub's own rule: offered ⇔ not refused with 403."""
    h = login(api, username)
    caps = api.get("/api/auth/me", headers=h).json()["capabilities"]
    order = api.post("/api/orders", headers=h, json={
        "patient": {"local_id": f"ME-{username}", "name": "测试^一"}, "modality": "CT"})
    if "order.write" in caps:
        assert order.status_code == 201, order.text
    else:
        assert order.status_code == 403, order.text
    users = api.get("/api/users", headers=h)
    assert users.status_code == (200 if "admin" in caps else 403)
    links = api.get("/api/patients/link-suggestions", headers=h)
    assert links.status_code == (200 if "patient.link" in caps else 403)
