"""GET /api/lab/{item_id}/results: what the viewer's lab view shows, scoped and audited."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.api.main import create_app
from hub.db.models import AuditEntry, Institution, WorklistItem
from hub.db.session import session_scope
from tests.conftest import DEMO_PASSWORD, make_settings, seed_demo
from tests.integration.lab.conftest import SyncMllp
from tests.integration.lab.test_lab_bad_input import oru

pytestmark = pytest.mark.integration


def login(api, username):
    r = api.post("/api/auth/token", data={"username": username, "password": DEMO_PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_results_of_a_critical_potassium(bridge, orthanc, tmp_path):
    seed_demo(bridge.url)
    with session_scope(bridge.url) as s:
        s.scalar(select(Institution).where(Institution.code == "BR01")).hl7_facilities = [
            "BRANCH1"]
    c = SyncMllp(bridge.port)
    ack = c.send(oru("API-1", value="6.9", flags="HH"))
    c.close()
    assert b"MSA|AA" in ack
    with session_scope(bridge.url) as s:
        item = s.scalar(select(WorklistItem).where(WorklistItem.kind == "lab"))
    app = create_app(make_settings(tmp_path, bridge.url, orthanc))
    with TestClient(app) as api:
        body = api.get(f"/api/lab/{item.id}/results", headers=login(api, "dr.sun")).json()
        assert body["item_id"] == item.id
        (rs,) = body["result_sets"]
        assert rs["is_critical"] and rs["service_code"] == "CHEM"
        (obs,) = rs["observations"]
        assert (obs["value"], obs["numeric_value"], obs["units"], obs["reference_range"]) == (
            "6.9", 6.9, "mmol/L", "3.5-5.5")
        assert obs["abnormal_flags"] == ["HH"] and obs["is_critical"]
        # Another branch cannot see it; a radiologist's scope does not include lab.
        assert api.get(f"/api/lab/{item.id}/results",
                       headers=login(api, "tech.br02")).status_code == 404
        assert api.get(f"/api/lab/{item.id}/results",
                       headers=login(api, "dr.li")).status_code == 404
        assert api.get("/api/lab/999999/results", headers=login(api, "admin")).status_code == 404
    with session_scope(bridge.url) as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "lab.view")).username == \
            "dr.sun"


def test_non_lab_item_is_422(sqlite_url, orthanc, tmp_path):
    from hub.domain.worklist import ItemKind
    from hub.intake import IntakeRules, NewItem, enqueue
    from hub.services.patients import PatientRef

    seed_demo(sqlite_url)
    with session_scope(sqlite_url) as s:
        item_id = enqueue(s, NewItem(kind=ItemKind.IMAGING, natural_key="1.2.3",
                                     institution_code="BR01", patient=PatientRef("X1", "甲"),
                                     ready=True, modality="CT"),
                          IntakeRules({"routine": 1440}, {})).id
    with TestClient(create_app(make_settings(tmp_path, sqlite_url, orthanc))) as api:
        r = api.get(f"/api/lab/{item_id}/results", headers=login(api, "admin"))
        assert r.status_code == 422 and "not lab" in r.json()["detail"]
