"""A real Celery worker and beat on Redis follow Orthanc; kill -9 the worker mid-stream."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select

from hub.db.models import WorklistItem
from hub.db.session import session_scope
from hub.demo import synthetic_ct
from hub.demo.run import send_datasets
from tests.conftest import make_database, seed_demo
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
STUDIES = 12


def _redis_or_skip(url):
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {url}: {exc}")


@pytest.fixture
def pg_url(tmp_path):
    yield from make_database("postgresql", tmp_path)


def test_worker_killed_mid_stream_loses_and_duplicates_nothing(pg_url, orthanc, orthanc_client,
                                                               tmp_path):
    broker = f"redis://127.0.0.1:6379/{random.randint(3, 15)}"
    _redis_or_skip(broker)
    import redis

    redis.Redis.from_url(broker).flushdb()
    seed_demo(pg_url)
    env = dict(os.environ, YIGONG_DATABASE_URL=pg_url, YIGONG_BROKER_URL=broker,
               YIGONG_ORTHANC_URL=orthanc.config.url, YIGONG_DATA_DIR=str(tmp_path),
               YIGONG_CHANGES_POLL_SECONDS="0.5", YIGONG_CHANGES_BUDGET_SECONDS="2")
    celery = [sys.executable, "-m", "celery", "-A", "hub.workers.celery_app"]
    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115

    def start_worker():
        return subprocess.Popen(celery + ["worker", "--pool", "solo", "-n",
                                          f"w{time.monotonic_ns()}@%h", "--loglevel", "INFO"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)

    beat = subprocess.Popen(celery + ["beat", "-s", str(tmp_path / "beat-schedule")],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    worker = start_worker()
    studies = [synthetic_ct(slices=3, size=16, patient_id=f"BR01-{i:04d}") for i in range(STUDIES)]

    def send_all():
        for s in studies:
            send_datasets(s, orthanc.config.dicom_port, "YIGONG", "BR01-CT")
            time.sleep(0.3)

    sender = threading.Thread(target=send_all)
    sender.start()
    try:
        def items():
            with session_scope(pg_url) as s:
                return list(s.scalars(select(WorklistItem)))

        wait_for(lambda: len(items()) >= 2, timeout=60, what="first items from the worker")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        seen_at_kill = len(items())
        time.sleep(1)
        worker = start_worker()
        sender.join()
        wait_for(lambda: sum(i.status == "ready" for i in items()) == STUDIES, timeout=120,
                 what="every study ready after the restart")
        keys = [i.natural_key for i in items()]
        assert sorted(keys) == sorted(s[0].StudyInstanceUID for s in studies)
        assert len(set(keys)) == len(keys) == STUDIES
        assert all(i.instance_count == 3 for i in items())
        assert seen_at_kill < STUDIES, "the kill should land mid-stream"
    finally:
        for p in (worker, beat):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
