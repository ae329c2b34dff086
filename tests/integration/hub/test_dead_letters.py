"""A task that keeps failing is retried with backoff, then kept as a visible dead letter."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.api.main import create_app
from hub.db.models import DeadLetter
from hub.db.session import session_scope
from tests.conftest import DEMO_PASSWORD, free_port, make_settings, seed_demo
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_task_failing_for_good_is_dead_lettered_and_listed(sqlite_url, orthanc, tmp_path):
    import redis

    broker = f"redis://127.0.0.1:6379/{random.randint(3, 15)}"
    try:
        redis.Redis.from_url(broker, socket_connect_timeout=2).flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable: {exc}")
    seed_demo(sqlite_url)
    dead_orthanc = f"http://127.0.0.1:{free_port()}"  # nothing listens: OrthancUnavailable
    env = dict(os.environ, YIGONG_DATABASE_URL=sqlite_url, YIGONG_BROKER_URL=broker,
               YIGONG_ORTHANC_URL=dead_orthanc, YIGONG_DATA_DIR=str(tmp_path),
               YIGONG_TASK_MAX_RETRIES="2")
    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "hub.workers.celery_app", "worker", "--pool",
         "solo", "--loglevel", "INFO"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        Celery(broker=broker).send_task("hub.workers.tasks.follow_orthanc_changes")

        def dead_letters():
            with session_scope(sqlite_url) as s:
                return s.scalars(select(DeadLetter)).all()

        rows = wait_for(dead_letters, timeout=90, what="a dead letter")
        assert rows[0].task_name == "hub.workers.tasks.follow_orthanc_changes"
        assert "OrthancUnavailable" in rows[0].error
        retries = (tmp_path / "worker.log").read_text().count("will retry")
        assert retries == 2, "retried max_retries times before giving up"
    finally:
        worker.terminate()
        worker.wait(20)
        log.close()
    app = create_app(make_settings(tmp_path, sqlite_url, orthanc))
    with TestClient(app) as api:
        token = api.post("/api/auth/token", data={"username": "admin",
                                                  "password": DEMO_PASSWORD}).json()
        listed = api.get("/api/dead-letters",
                         headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert [d["task"] for d in listed] == ["hub.workers.tasks.follow_orthanc_changes"]
