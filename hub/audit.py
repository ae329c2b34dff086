"""Audit trail: who read or changed what, written in the caller's transaction, then hash-chained.

Each sealed row's hash covers the previous sealed row's hash and the row's own canonical content,
so editing or deleting any sealed row breaks every later link; :func:`verify_chain` finds it.

Writing and chaining are separate steps. A writer only inserts its row, inside its own
transaction, so many writers commit in parallel. :func:`seal` (a beat task every few seconds, and
``yigong audit verify``) then chains committed rows in one serial pass. Chaining at write time
would make every audited request wait for the previous one's durable commit (~100/s here).
The price is a window of a few seconds in which a just-written row is not yet protected;
``verify`` reports rows left unsealed for longer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from hub.clock import as_utc, utcnow
from hub.db.models import AuditEntry

GENESIS = "0" * 64
#: Advisory lock id for the sealer on PostgreSQL (any constant unique within the database).
AUDIT_LOCK_KEY = 0x59474F4E47


@dataclass(frozen=True)
class Actor:
    username: str
    role: str
    institution_code: str
    client: str = ""


SYSTEM = Actor("system", "system", "HUB")


def _canonical(row: AuditEntry) -> str:
    return json.dumps(
        {"id": row.id, "at": as_utc(row.at).isoformat(timespec="microseconds"),
         "actor": [row.username, row.role, row.institution_code, row.client],
         "action": row.action, "target": row.target, "detail": row.detail},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )


def _digest(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def record(session: Session, actor: Actor, action: str, target: str,
           detail: dict[str, Any] | None = None) -> None:
    """Append one audit row to the current transaction: committed with it or not at all."""
    session.add(AuditEntry(
        at=utcnow(), username=actor.username, role=actor.role,
        institution_code=actor.institution_code, client=actor.client, action=action,
        target=target, detail=dict(detail or {}),
    ))


def record_read(session: Session, actor: Actor, action: str, target: str,
                detail: dict[str, Any] | None = None) -> None:
    """Audit a read of patient data, in a transaction that changes nothing else.

    On PostgreSQL such a transaction commits without waiting for the WAL flush
    (``synchronous_commit = off``, this transaction only): a read changes no clinical data, and
    a database crash can lose at most the last fraction of a second of read rows, never corrupt
    the chain. Changes keep the full durable commit. Waiting for the disk on every worklist
    refresh is what set the tail latency of the busiest route.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))
    record(session, actor, action, target, detail)


def seal(session: Session, batch: int = 5000) -> int:
    """Chain committed, unsealed rows in id order; returns how many were sealed.

    One sealer at a time: an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    last = session.execute(
        select(AuditEntry.chain_seq, AuditEntry.hash)
        .where(AuditEntry.chain_seq.is_not(None))
        .order_by(AuditEntry.chain_seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.chain_seq.is_(None))
        .order_by(AuditEntry.id).limit(batch)
    ).all()
    for row in rows:
        seq += 1
        row.chain_seq, row.prev_hash = seq, prev
        row.hash = prev = _digest(prev, _canonical(row))
    session.flush()
    return len(rows)


def seal_all(session_factory) -> int:  # noqa: ANN001
    """Seal until nothing is left, one committed batch at a time."""
    total = 0
    while True:
        with session_factory() as session:
            n = seal(session)
            session.commit()
        total += n
        if n == 0:
            return total


@dataclass(frozen=True)
class ChainProblem:
    entry_id: int
    reason: str


def verify_chain(session: Session, batch: int = 5000,
                 unsealed_grace: timedelta = timedelta(minutes=5)) -> Iterator[ChainProblem]:
    """Yield every row whose hash or link does not match; nothing means the chain is intact."""
    prev, expected_seq, last_seq = GENESIS, 1, 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.chain_seq > last_seq)
            .order_by(AuditEntry.chain_seq).limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            if row.chain_seq != expected_seq or row.prev_hash != prev:
                yield ChainProblem(row.id, "link to previous row broken (row deleted or reordered)")
            if _digest(row.prev_hash or "", _canonical(row)) != row.hash:
                yield ChainProblem(row.id, "content does not match its hash (row edited)")
            prev, last_seq = row.hash, row.chain_seq
            expected_seq = row.chain_seq + 1
    stale = session.scalars(
        select(AuditEntry.id).where(AuditEntry.chain_seq.is_(None),
                                    AuditEntry.at < utcnow() - unsealed_grace)
    ).all()
    for entry_id in stale:
        yield ChainProblem(entry_id, "never sealed into the chain")


def count_rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0
