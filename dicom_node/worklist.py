"""The branch's scheduled procedures, kept at the node so the modality worklist works offline.

:class:`WorklistStore` is a small SQLite file in the spool directory holding the last copy the
hub gave (``GET {hub}/api/orders/worklist?institution=<code>``). :class:`WorklistSync` refreshes
it every ``mwl_sync_seconds``; when the hub is unreachable the old copy stays and the MWL SCP
answers from it, so a technician can still pick the patient from the list.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from dicom_node.manifest import HubApiError, HubClient

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (accession_number TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class WorklistStore:
    """Scheduled procedure steps as the hub last sent them (one JSON object per entry)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def replace(self, entries: list[dict[str, Any]], synced_at: float) -> None:
        """Swap in a new copy atomically: a query sees the old list or the new one, never half."""
        with self._lock, self._connect() as conn:
            conn.execute("DELETE FROM entries")
            conn.executemany(
                "INSERT OR REPLACE INTO entries (accession_number, data) VALUES (?, ?)",
                [(str(e.get("accession_number", "")), json.dumps(e, ensure_ascii=False))
                 for e in entries])
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('synced_at', ?)",
                         (str(synced_at),))

    def entries(self) -> list[dict[str, Any]]:
        """Every stored entry."""
        with self._connect() as conn:
            return [json.loads(row[0]) for row in conn.execute(
                "SELECT data FROM entries ORDER BY accession_number")]

    def synced_at(self) -> float | None:
        """When the copy was last refreshed from the hub (epoch seconds), None if never."""
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'synced_at'").fetchone()
        return float(row[0]) if row else None


class WorklistSync:
    """Background refresh of a :class:`WorklistStore` from the hub."""

    def __init__(self, client: HubClient, store: WorklistStore, institution_code: str,
                 interval: float) -> None:
        self.client = client
        self.store = store
        self.institution_code = institution_code
        self.interval = interval
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync_once(self) -> bool:
        """Fetch and store the branch's scheduled procedures; False (old copy kept) on failure."""
        try:
            entries = self.client.get_worklist(self.institution_code)
        except HubApiError as exc:
            self.last_error = str(exc)
            logger.warning("worklist not synchronised", extra={"reason": str(exc)})
            return False
        self.store.replace(entries, time.time())
        self.last_error = ""
        logger.info("worklist synchronised", extra={"entries": len(entries)})
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception:  # noqa: BLE001 - keep the loop alive; the old copy still serves
                logger.exception("worklist sync failed")
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="worklist-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
