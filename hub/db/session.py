"""Engine and session factory, one per database URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            # Let SQLAlchemy, not pysqlite, decide where transactions begin (see _begin).
            dbapi_conn.isolation_level = None
            # WAL lets the API read while a worker writes; FK checks are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # noqa: ANN001
            # Take the write lock up front. Nearly every transaction here writes (reads of patient
            # data are audited), and a deferred one that reads first may find its snapshot stale
            # when it tries to write, or chain an audit row to a hash that is no longer the last.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=10, max_overflow=60, pool_timeout=60,
                         pool_pre_ping=True)


@lru_cache(maxsize=8)
def get_sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class HeldConnection:
    """One connection a batch writer keeps across its transactions (one per writer thread).

    Checking a connection out of the pool costs a round trip per transaction (the pre-ping);
    a held connection that broke is replaced when the next session is asked for, so a batch
    that failed on it is simply not acknowledged.

    On PostgreSQL the connection is told not to choose sequential scans or hash joins: every
    statement a batch writer runs looks rows up by key, and on a young database (small tables,
    no statistics yet) the planner would pick scans whose cost grows with the tables. JIT is
    off for the same connection: a plan that must still scan (the institutions list) gets the
    huge cost estimate of a disabled node, which would make PostgreSQL JIT-compile a statement
    that runs in microseconds.
    """

    def __init__(self, url: str) -> None:
        self._engine = get_engine(url)
        self._conn: Connection | None = None

    def session(self) -> Session:
        """A new session on the held connection; the caller begins and ends the transaction."""
        conn = self._conn
        if conn is None or conn.invalidated or conn.closed:
            if conn is not None:
                conn.close()
            conn = self._conn = self._engine.connect()
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET enable_seqscan = off")
                conn.exec_driver_sql("SET enable_hashjoin = off")
                conn.exec_driver_sql("SET jit = off")
                conn.commit()
        return Session(bind=conn, expire_on_commit=False)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
