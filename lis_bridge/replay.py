"""Replay stored raw messages through the same pipeline as live traffic."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from hub.clock import utcnow
from hub.db.lab_models import LabRawMessage
from hub.db.session import get_sessionmaker
from hub.domain.lab_rules import parse_ranges
from hub.intake import IntakeRules
from hub.services.lab import InstitutionMap, LabRules, record_message
from lis_bridge.config import LisSettings
from lis_bridge.server import FramePreparer

logger = logging.getLogger(__name__)


def replay_messages(database_url: str, settings: LisSettings, intake: IntakeRules, *,
                    ids: list[int] | None = None, ack_code: str | None = None,
                    since: datetime | None = None,
                    dry_run: bool = False) -> list[tuple[int, str, str]]:
    """Re-process the selected raw messages; returns ``(id, old ACK code, new ACK code)``.

    Each message is processed in its own transaction. The raw row keeps its bytes and key; its
    ACK columns and ``replayed_at`` are updated, and the records are re-applied (idempotent:
    unchanged observations are left alone, changed ones get a history entry).
    """
    preparer = FramePreparer(settings)
    rules = LabRules(intake=intake, critical_ranges=parse_ranges(settings.critical_ranges))
    institutions = InstitutionMap()
    maker = get_sessionmaker(database_url)
    query = select(LabRawMessage.id).order_by(LabRawMessage.id)
    if ids:
        query = query.where(LabRawMessage.id.in_(ids))
    if ack_code:
        query = query.where(LabRawMessage.ack_code == ack_code.upper())
    if since is not None:
        query = query.where(LabRawMessage.received_at >= since)
    with maker() as session:
        selected = list(session.scalars(query))
    out: list[tuple[int, str, str]] = []
    for rid in selected:
        with maker() as session, session.begin():
            row = session.get(LabRawMessage, rid)
            assert row is not None
            inbound = preparer.prepare(bytes(row.raw), f"replay:{row.peer}", row.received_at)
            before = row.ack_code
            if dry_run:
                out.append((rid, before, inbound.error.ack_code if inbound.error else "AA"))
                continue
            # The key (sender, MSH-10) moves to a new row holding the replayed outcome, so a
            # later re-send gets that; the old row stays for the record, pointing at the new one.
            key_cid = row.control_id
            row.sending_facility = row.control_id = None
            session.flush()
            result = record_message(session, inbound, rules, institutions, now=utcnow())
            new_row = session.get(LabRawMessage, result.raw_message_id)
            assert new_row is not None
            new_row.replayed_at = utcnow()
            new_row.error_text = (new_row.error_text or "") + f" (replay of {rid})"
            row.replayed_at = utcnow()
            row.error_text = f"replayed as {new_row.id}"
            out.append((rid, before, result.ack_code))
            logger.info("replayed raw message %s (MSH-10 %s): %s -> %s", rid, key_cid, before,
                        result.ack_code)
    return out
