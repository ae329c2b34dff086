"""Audit trail: who read or changed what, appended in the caller's transaction and hash-chained.

Each row's hash covers the previous row's hash and the row's own canonical content, so editing or
deleting any row breaks every later link; :func:`verify_chain` finds the first broken one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.clock import as_utc, utcnow
from hub.db.models import AuditEntry

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    username: str
    role: str
    institution_code: str
    client: str = ""


SYSTEM = Actor("system", "system", "HUB")


def _canonical(at: datetime, actor: tuple[str, str, str, str], action: str, target: str,
               detail: dict[str, Any]) -> str:
    return json.dumps(
        {"at": as_utc(at).isoformat(timespec="microseconds"), "actor": list(actor),
         "action": action, "target": target, "detail": detail},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )


def _digest(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def record(session: Session, actor: Actor, action: str, target: str,
           detail: dict[str, Any] | None = None) -> AuditEntry:
    """Append one audit row in the current transaction.

    On PostgreSQL the last row is locked so that concurrent writers chain one after another; on
    SQLite the database-wide write lock does the same.
    """
    detail = detail or {}
    last = session.execute(
        select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1).with_for_update()
    ).scalar()
    prev = last or GENESIS
    at = utcnow()
    key = (actor.username, actor.role, actor.institution_code, actor.client)
    entry = AuditEntry(
        at=at, username=actor.username, role=actor.role,
        institution_code=actor.institution_code, client=actor.client, action=action,
        target=target, detail=detail, prev_hash=prev,
        hash=_digest(prev, _canonical(at, key, action, target, detail)),
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainProblem:
    entry_id: int
    reason: str


def verify_chain(session: Session, batch: int = 5000) -> Iterator[ChainProblem]:
    """Yield every row whose hash or link does not match; nothing means the chain is intact."""
    prev = GENESIS
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            if row.prev_hash != prev:
                yield ChainProblem(row.id, "link to previous row broken (row deleted or reordered)")
            key = (row.username, row.role, row.institution_code, row.client)
            expected = _digest(row.prev_hash,
                               _canonical(row.at, key, row.action, row.target, row.detail))
            if expected != row.hash:
                yield ChainProblem(row.id, "content does not match its hash (row edited)")
            prev = row.hash
            last_id = row.id
