"""Shared fixtures: real Orthanc, real PostgreSQL / SQLite, free loopback ports, test data."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_TESTDATA = Path(os.environ.get("YIGONG_TESTDATA", REPO.parent / "shared" / "testdata"))
PG_ADMIN_URL = os.environ.get("YIGONG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not SHARED_TESTDATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_TESTDATA}")
    return SHARED_TESTDATA


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"


def make_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield a migrated, empty database URL of ``kind`` ('sqlite' or 'postgresql')."""
    from hub.db.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
        upgrade(url)
        yield url
        return
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"yigong_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{url}/{name}"
    upgrade(url)
    try:
        yield url
    finally:
        from hub.db.session import get_engine

        get_engine(url).dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test using this runs twice: on SQLite and on PostgreSQL."""
    yield from make_database(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield from make_database("sqlite", tmp_path)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """A real Orthanc (Debian package) on free loopback ports, shared by the session."""
    from hub.orthanc.server import OrthancConfig, OrthancProcess

    if not Path("/usr/sbin/Orthanc").exists():
        pytest.fail("Orthanc is not installed: run scripts/test.sh (it installs it)")
    cfg = OrthancConfig(
        root=tmp_path_factory.mktemp("orthanc"),
        http_port=free_port(),
        dicom_port=free_port(),
        stable_age=2,
    )
    proc = OrthancProcess(cfg)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def orthanc_client(orthanc):
    from hub.orthanc.client import OrthancClient

    client = OrthancClient(orthanc.config.url, orthanc.config.user, orthanc.config.password)
    yield client
    # Each test starts from an empty archive; the change feed keeps counting, which is realistic.
    for pid in client.get_json("/patients"):
        client._request("DELETE", f"/patients/{pid}")


# --- a running hub -----------------------------------------------------------------------------

DEMO_PASSWORD = "demo-password-1"


def seed_demo(url: str) -> None:
    """Demo institutions and one user per demo account, all with DEMO_PASSWORD."""
    from hub import audit
    from hub.db.session import session_scope
    from hub.demo import INSTITUTIONS, USERS
    from hub.services.users import create_user, upsert_institution

    with session_scope(url) as session:
        for code, name, is_lead, aets, facilities in INSTITUTIONS:
            upsert_institution(session, audit.SYSTEM, code, name, is_lead, aets, facilities)
        for username, role, inst, display, rank in USERS:
            create_user(session, audit.SYSTEM, username, DEMO_PASSWORD, role, inst, display, rank)


class HubServer:
    """The hub API served by uvicorn in a thread, plus a change-follower thread (the worker)."""

    def __init__(self, settings, orthanc_client) -> None:
        import threading

        import uvicorn

        from hub.api.main import create_app

        self.settings = settings
        self.db_url = settings.effective_database_url
        self.client = orthanc_client
        self.url = f"http://127.0.0.1:{settings.api_port}"
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1",
                                                    port=settings.api_port, log_level="warning"))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.server.run, daemon=True),
                         threading.Thread(target=self._follow, daemon=True)]

    def _follow(self) -> None:
        from hub.intake import IntakeRules
        from hub.workers.tasks import follow_until_done

        rules = IntakeRules.from_settings(self.settings)
        while not self._stop.wait(0.3):
            try:
                follow_until_done(self.db_url, self.client, rules, budget_seconds=5)
            except Exception:  # noqa: BLE001 - like a worker, keep going; tests see the effect
                import logging

                logging.getLogger(__name__).exception("follower pass failed")

    def start(self) -> None:
        import time

        import requests

        for t in self._threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise TimeoutError("hub API did not start")

    def stop(self) -> None:
        self._stop.set()
        self.server.should_exit = True
        for t in self._threads:
            t.join(10)

    def token(self, username: str, password: str = DEMO_PASSWORD) -> str:
        import requests

        r = requests.post(self.url + "/api/auth/token",
                          data={"username": username, "password": password}, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}


def make_settings(tmp_path: Path, db_url: str, orthanc, **overrides):
    from hub.config import Settings

    values = dict(
        data_dir=tmp_path / "data", database_url=db_url, orthanc_url=orthanc.config.url,
        orthanc_user=orthanc.config.user, orthanc_password=orthanc.config.password,
        orthanc_dicom_port=orthanc.config.dicom_port, api_port=free_port(),
        secret_key="test-secret-key-0123456789abcdef0123456789",
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def hub_server(tmp_path: Path, sqlite_url: str, orthanc, orthanc_client) -> Iterator[HubServer]:
    """A running hub on SQLite with the demo institutions and users (password DEMO_PASSWORD)."""
    seed_demo(sqlite_url)
    server = HubServer(make_settings(tmp_path, sqlite_url, orthanc), orthanc_client)
    server.start()
    yield server
    server.stop()
