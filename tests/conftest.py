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
