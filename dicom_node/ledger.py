"""SQLite index of the spool: which instances belong to which study, what was forwarded.

The files in ``queue/`` are the truth about what still has to be sent; the ledger remembers
what *was* sent (for manifests) and the numbers ``yigong node status`` shows. It lives in the
spool directory so another process can read it. After a crash :meth:`Ledger.reconcile`
brings it back in line with the files:

* a queued file without a row gets a row (the insert was lost after the rename);
* a ``queued`` row without a file is ``forwarded`` (files are deleted only after the hub
  confirmed them, so a missing file means it was confirmed and the update was lost).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from dicom_node.spool import InstanceInfo

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_instance_uid TEXT PRIMARY KEY,
    source_aet TEXT NOT NULL DEFAULT '',
    first_received_at REAL NOT NULL,
    last_received_at REAL NOT NULL,
    origin_posted INTEGER NOT NULL DEFAULT 0,
    manifest_dirty INTEGER NOT NULL DEFAULT 1,
    manifest_posted_at REAL,
    manifest_attempts INTEGER NOT NULL DEFAULT 0,
    manifest_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    study_instance_uid TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL DEFAULT '',
    transfer_syntax_uid TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    received_at REAL NOT NULL,
    forwarded_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ix_instances_study ON instances (study_instance_uid, state);
CREATE INDEX IF NOT EXISTS ix_instances_state ON instances (state, received_at);
CREATE INDEX IF NOT EXISTS ix_instances_fwd ON instances (forwarded_at);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, at REAL NOT NULL);
"""


class InstanceState(StrEnum):
    """Where an instance is in the node."""

    QUEUED = "queued"
    FORWARDED = "forwarded"
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What ``yigong node status`` prints."""

    queue_depth: int
    oldest_waiting_at: float | None
    last_error: str
    last_error_at: float | None
    forwarded_last_minute: int
    rate_per_second: float
    quarantined: int
    studies_awaiting_manifest: int
    received_total: int
    forwarded_total: int


class Ledger:
    """Thread-safe: one SQLite connection per thread, WAL so readers never block writers."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        with self._conn() as c:
            c.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: commits are not fsynced; a lost commit is repaired by reconcile() from the
        # spool files, which *are* fsynced. This keeps the receive path at one fsync pair.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        yield conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    # --- receiving ---------------------------------------------------------------------
    def record_received(self, info: InstanceInfo, now: float | None = None) -> None:
        """Note a newly spooled instance; reopens its study for a new manifest."""
        now = time.time() if now is None else now
        with self._tx() as c:
            c.execute(
                "INSERT INTO studies (study_instance_uid, source_aet, first_received_at,"
                " last_received_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(study_instance_uid) DO UPDATE SET"
                " last_received_at = excluded.last_received_at, manifest_dirty = 1,"
                " source_aet = CASE WHEN studies.source_aet = '' THEN excluded.source_aet"
                " ELSE studies.source_aet END",
                (info.study_instance_uid, info.calling_aet, now, now),
            )
            c.execute(
                "INSERT INTO instances (sop_instance_uid, study_instance_uid,"
                " series_instance_uid, sop_class_uid, transfer_syntax_uid, size, state,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)"
                " ON CONFLICT(sop_instance_uid) DO UPDATE SET state = 'queued',"
                " received_at = excluded.received_at, size = excluded.size, attempts = 0",
                (info.sop_instance_uid, info.study_instance_uid, info.series_instance_uid,
                 info.sop_class_uid, info.transfer_syntax_uid, info.size, now),
            )

    # --- forwarding --------------------------------------------------------------------
    def record_forwarded(self, sop_instance_uid: str, now: float | None = None) -> None:
        """The hub confirmed this instance."""
        now = time.time() if now is None else now
        with self._conn() as c:
            c.execute(
                "UPDATE instances SET state = 'forwarded', forwarded_at = ?, last_error = ''"
                " WHERE sop_instance_uid = ?",
                (now, sop_instance_uid),
            )

    def record_failure(self, sop_instance_uid: str, error: str, now: float | None = None) -> int:
        """Count a failed attempt; returns the attempts so far."""
        now = time.time() if now is None else now
        with self._tx() as c:
            c.execute(
                "UPDATE instances SET attempts = attempts + 1, last_error = ?"
                " WHERE sop_instance_uid = ?",
                (error[:500], sop_instance_uid),
            )
            row = c.execute(
                "SELECT attempts FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)
            ).fetchone()
        self.set_error(error, now)
        return int(row[0]) if row else 1

    def record_quarantined(self, sop_instance_uid: str, reason: str) -> None:
        """The hub refuses this instance for good; it no longer blocks its study's manifest."""
        with self._conn() as c:
            c.execute(
                "UPDATE instances SET state = 'quarantined', last_error = ?"
                " WHERE sop_instance_uid = ?",
                (reason[:500], sop_instance_uid),
            )
        self.set_error(f"quarantined {sop_instance_uid}: {reason}")

    def set_error(self, message: str, now: float | None = None) -> None:
        """Remember the latest error for ``status``."""
        now = time.time() if now is None else now
        with self._conn() as c:
            c.execute(
                "INSERT INTO kv (key, value, at) VALUES ('last_error', ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value, at = excluded.at",
                (message[:500], now),
            )

    # --- study identity and manifests --------------------------------------------------
    def study_origin_posted(self, study_instance_uid: str) -> bool:
        """True once the hub knows this study's institution."""
        with self._conn() as c:
            row = c.execute(
                "SELECT origin_posted FROM studies WHERE study_instance_uid = ?",
                (study_instance_uid,),
            ).fetchone()
        return bool(row and row[0])

    def study_source_aet(self, study_instance_uid: str) -> str:
        """Calling AE title of the modality that sent the study's first instance."""
        with self._conn() as c:
            row = c.execute(
                "SELECT source_aet FROM studies WHERE study_instance_uid = ?",
                (study_instance_uid,),
            ).fetchone()
        return str(row[0]) if row else ""

    def mark_origin_posted(self, study_instance_uid: str) -> None:
        """The hub accepted ``PUT /origin`` for this study."""
        with self._conn() as c:
            c.execute(
                "UPDATE studies SET origin_posted = 1 WHERE study_instance_uid = ?",
                (study_instance_uid,),
            )

    def studies_needing_origin(self) -> list[str]:
        """Studies with at least one forwarded instance whose origin the hub does not know."""
        with self._conn() as c:
            rows = c.execute(
                "SELECT s.study_instance_uid FROM studies s WHERE s.origin_posted = 0 AND"
                " EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid ="
                " s.study_instance_uid AND i.state = 'forwarded')"
            ).fetchall()
        return [r[0] for r in rows]

    def studies_ready_for_manifest(self, now: float, quiet_seconds: float) -> list[str]:
        """Studies quiet for ``quiet_seconds`` with nothing left in the queue."""
        with self._conn() as c:
            rows = c.execute(
                "SELECT s.study_instance_uid FROM studies s WHERE s.manifest_dirty = 1"
                " AND s.last_received_at <= ? AND NOT EXISTS (SELECT 1 FROM instances i"
                " WHERE i.study_instance_uid = s.study_instance_uid AND i.state = 'queued')"
                " AND EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid ="
                " s.study_instance_uid AND i.state = 'forwarded')",
                (now - quiet_seconds,),
            ).fetchall()
        return [r[0] for r in rows]

    def manifest(self, study_instance_uid: str) -> tuple[dict[str, list[str]], str, float]:
        """``(series -> sorted SOP UIDs, source AET, last_received_at)`` of forwarded instances."""
        with self._conn() as c:
            srow = c.execute(
                "SELECT source_aet, last_received_at FROM studies WHERE study_instance_uid = ?",
                (study_instance_uid,),
            ).fetchone()
            rows = c.execute(
                "SELECT series_instance_uid, sop_instance_uid FROM instances"
                " WHERE study_instance_uid = ? AND state = 'forwarded'"
                " ORDER BY series_instance_uid, sop_instance_uid",
                (study_instance_uid,),
            ).fetchall()
        series: dict[str, list[str]] = {}
        for se, sop in rows:
            series.setdefault(se, []).append(sop)
        source_aet, last = (srow[0], srow[1]) if srow else ("", 0.0)
        return series, source_aet, float(last)

    def mark_manifest_posted(
        self, study_instance_uid: str, last_received_at: float, now: float | None = None
    ) -> bool:
        """Clear the study's dirty flag unless an instance arrived since the manifest was built.

        Returns:
            False when a late instance reopened the study (another manifest will follow).
        """
        now = time.time() if now is None else now
        with self._conn() as c:
            cur = c.execute(
                "UPDATE studies SET manifest_dirty = 0, manifest_posted_at = ?,"
                " manifest_error = '' WHERE study_instance_uid = ? AND last_received_at = ?",
                (now, study_instance_uid, last_received_at),
            )
        return cur.rowcount == 1

    def record_manifest_failure(self, study_instance_uid: str, error: str) -> None:
        """Keep the study dirty and remember why posting failed."""
        with self._conn() as c:
            c.execute(
                "UPDATE studies SET manifest_attempts = manifest_attempts + 1,"
                " manifest_error = ? WHERE study_instance_uid = ?",
                (error[:500], study_instance_uid),
            )
        self.set_error(f"manifest {study_instance_uid}: {error}")

    # --- restart ---------------------------------------------------------------------
    def queued_uids(self) -> set[str]:
        """SOP UIDs the ledger believes are still queued."""
        with self._conn() as c:
            return {r[0] for r in c.execute(
                "SELECT sop_instance_uid FROM instances WHERE state = 'queued'")}

    def known_uids(self, uids: Iterable[str]) -> set[str]:
        """Which of ``uids`` have a row in state queued."""
        queued = self.queued_uids()
        return {u for u in uids if u in queued}

    def reconcile(self, spooled: dict[str, InstanceInfo], now: float | None = None) -> None:
        """Bring the ledger in line with the queued files (see module docstring).

        Args:
            spooled: SOP UID -> identifiers for every file now in ``queue/``.
        """
        now = time.time() if now is None else now
        queued = self.queued_uids()
        for uid in queued - spooled.keys():
            self.record_forwarded(uid, now)
        for uid, info in spooled.items():
            if uid not in queued:
                self.record_received(info, now)

    def prune(self, older_than: float) -> int:
        """Forget studies whose manifest was posted and that were last touched before
        ``older_than`` (epoch seconds), with their instances; returns instances removed.

        Keeps the ledger small on a gateway that runs for years. A study pruned and then
        reopened by a very late instance gets a manifest of the new instances only.
        """
        with self._tx() as c:
            studies = [r[0] for r in c.execute(
                "SELECT study_instance_uid FROM studies WHERE manifest_dirty = 0"
                " AND last_received_at < ? AND NOT EXISTS (SELECT 1 FROM instances i"
                " WHERE i.study_instance_uid = studies.study_instance_uid"
                " AND i.state = 'queued')", (older_than,))]
            removed = 0
            for study in studies:
                removed += c.execute(
                    "DELETE FROM instances WHERE study_instance_uid = ?", (study,)).rowcount
                c.execute("DELETE FROM studies WHERE study_instance_uid = ?", (study,))
        return removed

    # --- status ----------------------------------------------------------------------
    def status(self, now: float | None = None) -> NodeStatus:
        """Numbers for ``yigong node status`` and the metrics gauges."""
        now = time.time() if now is None else now
        with self._conn() as c:
            depth, oldest = c.execute(
                "SELECT COUNT(*), MIN(received_at) FROM instances WHERE state = 'queued'"
            ).fetchone()
            last_min = c.execute(
                "SELECT COUNT(*) FROM instances WHERE forwarded_at >= ?", (now - 60,)
            ).fetchone()[0]
            quarantined = c.execute(
                "SELECT COUNT(*) FROM instances WHERE state = 'quarantined'"
            ).fetchone()[0]
            awaiting = c.execute(
                "SELECT COUNT(*) FROM studies WHERE manifest_dirty = 1"
            ).fetchone()[0]
            received_total = c.execute("SELECT COUNT(*) FROM instances").fetchone()[0]
            fwd_total = c.execute(
                "SELECT COUNT(*) FROM instances WHERE state = 'forwarded'"
            ).fetchone()[0]
            err = c.execute("SELECT value, at FROM kv WHERE key = 'last_error'").fetchone()
        return NodeStatus(
            queue_depth=int(depth),
            oldest_waiting_at=oldest,
            last_error=err[0] if err else "",
            last_error_at=err[1] if err else None,
            forwarded_last_minute=int(last_min),
            rate_per_second=last_min / 60.0,
            quarantined=int(quarantined),
            studies_awaiting_manifest=int(awaiting),
            received_total=int(received_total),
            forwarded_total=int(fwd_total),
        )

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
