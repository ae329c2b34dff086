"""A transaction the database refused (deadlock, outage) answers 503 with a reason, not 500."""

from __future__ import annotations

import psycopg
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from hub.api.errors import install


def client_raising(orig: Exception) -> TestClient:
    app = FastAPI()
    install(app)

    @app.post("/save")
    def save() -> None:
        raise OperationalError("UPDATE worklist_items ...", {}, orig)

    return TestClient(app, raise_server_exceptions=False)


def test_a_deadlock_asks_the_user_to_try_again_at_once() -> None:
    response = client_raising(psycopg.errors.DeadlockDetected("deadlock detected")).post("/save")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "try again" in response.json()["detail"]


def test_a_database_outage_is_503_with_a_reason() -> None:
    response = client_raising(psycopg.OperationalError("connection refused")).post("/save")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["detail"].startswith("database unavailable")
