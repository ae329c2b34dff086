"""Fixtures for the report tests: an API on a real database with the community CA set up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from hub import audit
from hub.api.main import create_app
from hub.clock import utcnow
from hub.db.models import Base
from hub.db.session import session_scope
from hub.domain.access import Role
from hub.domain.priority import Priority
from hub.domain.worklist import ItemKind
from hub.intake import IntakeRules, NewItem, enqueue
from hub.reports import ca
from hub.services.patients import PatientRef
from hub.services.users import create_user
from lis_bridge.config import LisSettings
from tests.conftest import DEMO_PASSWORD, make_settings, seed_demo

RULES = IntakeRules({"stat": 30, "urgent": 120, "routine": 1440},
                    {"CT": "radiology", "DX": "radiology", "ECG": "cardiology"})


def passphrase(settings) -> bytes:
    return ca.key_passphrase(settings.resolved_secret_key())


def setup_ca(db_url: str, settings, users=("dr.li", "dr.zhao", "dr.chen", "dr.sun")) -> None:
    """Community CA plus a certificate for each reader, and two extra radiologists."""
    with session_scope(db_url) as s:
        ca.init_ca(s, passphrase(settings), utcnow())
        create_user(s, audit.SYSTEM, "dr.wu", DEMO_PASSWORD, Role.RADIOLOGIST, "LEAD", "吴住院",
                    "resident")
        create_user(s, audit.SYSTEM, "dr.norank", DEMO_PASSWORD, Role.RADIOLOGIST, "LEAD",
                    "无职称", None)
        for u in (*users, "dr.wu", "dr.norank"):
            ca.issue(s, u, passphrase(settings), utcnow())


def add_item(db_url, key, inst="BR01", kind=ItemKind.IMAGING, priority=Priority.ROUTINE,
             name="王小东", modality="CT", body_part="HEAD", received_ago=timedelta(minutes=5),
             patient_local_id=None, national_id=None):
    with session_scope(db_url) as s:
        item = enqueue(s, NewItem(
            kind=kind, natural_key=key, institution_code=inst,
            patient=PatientRef(patient_local_id or f"{inst}-{key}", name, national_id=national_id),
            priority=priority, ready=True, modality=modality, body_part=body_part,
            description="头颅CT平扫" if body_part == "HEAD" else None,
            accession_number=f"ACC{key}", received_at=utcnow() - received_ago), RULES)
        return item.id, item.patient_id


def snapshot(db_url: str) -> dict[str, list]:
    """Every row of every table, to prove a refused request changed nothing."""
    out = {}
    with session_scope(db_url) as s:
        for table in Base.metadata.sorted_tables:
            rows = s.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
        s.execute(text("SELECT 1"))
    return out


@pytest.fixture
def report_api(tmp_path, db_url, orthanc):
    """TestClient on a real database (SQLite and PostgreSQL), CA and certificates ready."""
    seed_demo(db_url)
    settings = make_settings(tmp_path, db_url, orthanc)
    setup_ca(db_url, settings)
    app = create_app(settings)
    app.state.lis_settings = LisSettings(his_endpoints={})
    with TestClient(app) as client:
        client.db_url = db_url
        client.settings = settings
        client.app_ref = app
        yield client


def login(client, username: str) -> dict[str, str]:
    r = client.post("/api/auth/token", data={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


HEAD_CT_DRAFT = {
    "template": "ct_head",
    "findings": "左侧基底节区见斑片状低密度影，边界欠清。中线结构居中。",
    "impression": "左侧基底节区腔隙性脑梗死。",
    "fields": {"hemorrhage": "无", "infarct": "有", "midline_shift_mm": 0},
}


def write_and_submit(client, item_id: int, writer: str = "dr.li") -> None:
    h = login(client, writer)
    r = client.put(f"/api/worklist/{item_id}/report/draft", json=HEAD_CT_DRAFT, headers=h)
    assert r.status_code == 200, r.text
    r = client.post(f"/api/worklist/{item_id}/report/submit", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted"
