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

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from hub.clock import as_utc, utcnow
from hub.db.models import AuditEntry

GENESIS = "0" * 64
#: Advisory lock id for the audit chain (any constant unique within the database).
AUDIT_LOCK_KEY = 0x59474F4E47


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


@dataclass(frozen=True)
class _Pending:
    at: datetime
    actor: Actor
    action: str
    target: str
    detail: dict[str, Any]


def record(session: Session, actor: Actor, action: str, target: str,
           detail: dict[str, Any] | None = None) -> None:
    """Append one audit row to the current transaction; it is written when the transaction
    commits, and never without it (a rolled-back change leaves no audit row, and vice versa).
    """
    session.info.setdefault(_PENDING, []).append(
        _Pending(utcnow(), actor, action, target, dict(detail or {})))


_PENDING = "yigong_audit_pending"


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Chain and insert the transaction's audit rows as late as possible before commit.

    Writers must chain one after another, each reading the hash the previous one committed, so
    the chain is serialised; doing it here keeps that serial section to an insert and a commit.
    On PostgreSQL a transaction-scoped advisory lock orders writers (locking the last row would
    not: a waiter would chain to the row it had locked, no longer the last). On SQLite every
    transaction starts with BEGIN IMMEDIATE (hub.db.session), which orders them already.
    """
    pending: list[_Pending] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    prev = session.execute(
        select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).scalar() or GENESIS
    for p in pending:
        a = p.actor
        digest = _digest(prev, _canonical(p.at, (a.username, a.role, a.institution_code,
                                                 a.client), p.action, p.target, p.detail))
        session.add(AuditEntry(at=p.at, username=a.username, role=a.role,
                               institution_code=a.institution_code, client=a.client,
                               action=p.action, target=p.target, detail=p.detail,
                               prev_hash=prev, hash=digest))
        prev = digest
    session.flush()


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


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
