"""The one door into the reading worklist.

Every path that creates a reading item calls :func:`enqueue`: the Orthanc change feed, an ECG after
ingest, a lab result set from the HL7 edge, a manual re-read. It is idempotent on the item's
natural key (Study Instance UID, ECG SOP Instance UID, facility + filler order number) because the
change feed and Celery may both deliver twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.clock import as_utc, utcnow
from hub.db.bulk import insert_returning_ids, prefetch_where_in, select_where_in
from hub.db.models import Institution, WorklistItem
from hub.domain.priority import PRIORITY_RANK, Priority, specialty_for
from hub.domain.turnaround import due_time
from hub.domain.worklist import ItemKind, ReadingState
from hub.services.patients import (
    PatientRef,
    prefetch_resolve,
    resolve_patient,
    resolve_patients,
)

logger = logging.getLogger(__name__)

UNKNOWN_INSTITUTION = "UNKNOWN"


@dataclass(frozen=True)
class IntakeRules:
    """Configuration the door needs, taken from Settings by the caller."""

    turnaround_minutes: Mapping[str, int]
    specialty_by_modality: Mapping[str, str]

    @classmethod
    def from_settings(cls, settings: Any) -> IntakeRules:
        return cls(settings.turnaround_minutes, settings.specialty_by_modality)


@dataclass
class NewItem:
    """What an edge knows about something to be read."""

    kind: ItemKind
    natural_key: str
    institution_code: str | None
    patient: PatientRef
    priority: Priority = Priority.ROUTINE
    ready: bool = False
    modality: str | None = None
    body_part: str | None = None
    accession_number: str | None = None
    study_date: date | None = None
    description: str | None = None
    series_count: int = 0
    instance_count: int = 0
    orthanc_id: str | None = None
    is_critical: bool = False
    critical_reason: str | None = None
    flags: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None


def enqueue(session: Session, new: NewItem, rules: IntakeRules) -> WorklistItem:
    """Create the worklist item for ``new`` or update the one with the same natural key.

    Never drops an item: a missing patient ID or unknown institution becomes a flag for a person
    to resolve. Priority only ever rises (a STAT ECG stays STAT when re-delivered as routine).
    Does not commit; the caller's transaction decides.
    """
    kind = ItemKind(new.kind)
    existing = _find(session, kind, new.natural_key)
    if existing is not None:
        _update(existing, new, rules)
        return existing

    inst_code = new.institution_code
    known = bool(inst_code) and session.scalar(
        select(Institution.id).where(Institution.code == inst_code)) is not None
    inst_code, flags = _intake_flags(new, known)
    patient = resolve_patient(session, inst_code, new.patient)
    item = WorklistItem(**_item_values(new, rules, inst_code, flags,
                                       patient.id if patient else None, utcnow()))
    # A concurrent delivery of the same key may win the race; the unique constraint decides.
    try:
        with session.begin_nested():
            session.add(item)
            session.flush()
    except IntegrityError:
        existing = _find(session, kind, new.natural_key)
        if existing is None:
            raise
        _update(existing, new, rules)
        return existing
    logger.info("worklist item %s created: kind=%s key=%s", item.id, kind, new.natural_key)
    return item


@dataclass(frozen=True)
class Enqueued:
    """What a batch caller needs to know about the item its result went to."""

    id: int
    institution_code: str
    patient_id: int | None
    patient_local_id: str | None
    created: bool  # False: the key existed and the item was updated


def enqueue_many(session: Session, news: Sequence[NewItem], rules: IntakeRules,
                 *, known_institutions: Collection[str] = ()) -> list[Enqueued]:
    """:func:`enqueue` for a batch (the HL7 bridge records hundreds of results a second).

    Same rules and outcome as calling :func:`enqueue` for each in order, with a fixed number
    of statements for new keys: one query for existing keys, one for institutions, the batch
    patient lookup, one multi-row INSERT. An existing key, or one repeated within the batch,
    is updated through :func:`enqueue`. A concurrent insert of the same key fails the caller's
    transaction (unique constraint); callers retry, and the retry finds the key.
    ``known_institutions`` are codes the caller has just read from the institutions table;
    only the others are looked up.
    """
    existing = _existing_keys(session, [_item_key(n) for n in news])
    known_insts = set(known_institutions)
    known_insts |= {code for (code,) in select_where_in(
        session, [Institution.code], [Institution.code],
        [(n.institution_code,) for n in news
         if n.institution_code and n.institution_code not in known_insts])}
    fresh: list[int] = []
    later: list[int] = []
    claimed: set[tuple[str, str]] = set()
    for i, new in enumerate(news):
        key = _item_key(new)
        if key in existing or key in claimed:
            later.append(i)
        else:
            claimed.add(key)
            fresh.append(i)
    placed = [_intake_flags(news[i], news[i].institution_code in known_insts) for i in fresh]
    patient_ids = resolve_patients(session, [(inst, news[i].patient)
                                             for i, (inst, _flags) in zip(fresh, placed,
                                                                          strict=True)])
    now = utcnow()
    rows = [_item_values(news[i], rules, inst, flags, pid, now)
            for i, (inst, flags), pid in zip(fresh, placed, patient_ids, strict=True)]
    ids = insert_returning_ids(session, WorklistItem.__table__, rows)
    out: list[Enqueued | None] = [None] * len(news)
    for i, row, item_id in zip(fresh, rows, ids, strict=True):
        out[i] = Enqueued(item_id, row["institution_code"], row["patient_id"],
                          row["patient_local_id"], created=True)
        logger.info("worklist item %s created: kind=%s key=%s", item_id, row["kind"],
                    row["natural_key"])
    for i in later:
        item = enqueue(session, news[i], rules)
        out[i] = Enqueued(item.id, item.institution_code, item.patient_id, item.patient_local_id,
                          created=False)
    return [e for e in out if e is not None]


def prefetch_enqueue_many(session: Session, news: Sequence[NewItem]) -> None:
    """Announce the lookups :func:`enqueue_many` starts with (``hub.db.bulk``).

    The existing keys and the patients' branch IDs are then read in one round trip with the
    caller's next read. ``news`` may be a superset of what is later enqueued.
    """
    prefetch_where_in(session, _ITEM_KEY, _ITEM_KEY, [_item_key(n) for n in news])
    prefetch_resolve(session, [(_filed_under(n), n.patient) for n in news])


_ITEM_KEY = (WorklistItem.kind, WorklistItem.natural_key)


def _item_key(new: NewItem) -> tuple[str, str]:
    return ItemKind(new.kind).value, new.natural_key


def _existing_keys(session: Session, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(kind, key) for kind, key in select_where_in(session, _ITEM_KEY, _ITEM_KEY, keys)}


def _filed_under(new: NewItem) -> str:
    """The code an item is filed (and its patient identified) under: its own, else UNKNOWN."""
    return new.institution_code or UNKNOWN_INSTITUTION


def _intake_flags(new: NewItem, institution_known: bool) -> tuple[str, list[str]]:
    """The institution code to file the item under, and the problems a person must resolve.

    Never drops an item: an unknown institution or a missing patient ID becomes a flag.
    """
    flags = list(new.flags)
    inst_code = new.institution_code
    if not institution_known:
        flags.append(f"unknown institution {inst_code!r}" if inst_code else "unknown institution")
        inst_code = _filed_under(new)
    if not new.patient.local_id and not new.patient.national_id:
        flags.append("missing patient ID")
    return inst_code, flags  # type: ignore[return-value]


def _item_values(new: NewItem, rules: IntakeRules, inst_code: str, flags: list[str],
                 patient_id: int | None, now: datetime) -> dict[str, Any]:
    """Column values of a new worklist item (shared by the single and the batch door)."""
    kind = ItemKind(new.kind)
    received = new.received_at or now
    priority = Priority.STAT if new.is_critical else Priority(new.priority)
    return {
        "kind": kind.value,
        "natural_key": new.natural_key,
        "status": (ReadingState.READY if new.ready else ReadingState.RECEIVING).value,
        "priority": priority.value,
        "priority_rank": PRIORITY_RANK[priority],
        "specialty": specialty_for(kind, new.modality, rules.specialty_by_modality).value,
        "institution_code": inst_code,
        "patient_id": patient_id,
        "patient_local_id": new.patient.local_id,
        "patient_name": new.patient.name,
        "accession_number": new.accession_number,
        "modality": new.modality,
        "body_part": new.body_part,
        "description": new.description,
        "study_date": new.study_date,
        "series_count": new.series_count,
        "instance_count": new.instance_count,
        "orthanc_id": new.orthanc_id,
        "received_at": received,
        "due_at": due_time(received, priority, kind, rules.turnaround_minutes),
        "claimed_by": None,
        "claim_expires_at": None,
        "is_stable": new.ready,
        "is_critical": new.is_critical,
        "critical_reason": new.critical_reason,
        "flags": flags,
        "details": dict(new.details),
        "updated_at": now,
    }


def _find(session: Session, kind: ItemKind, key: str) -> WorklistItem | None:
    # Locked and re-read: _update rewrites whole JSON columns (details, flags), so an update
    # built on a stale copy would undo a concurrent writer's, e.g. an order link made by
    # reconciliation while the change feed refreshes the same study.
    return session.scalar(
        select(WorklistItem)
        .where(WorklistItem.kind == kind.value, WorklistItem.natural_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _update(item: WorklistItem, new: NewItem, rules: IntakeRules) -> None:
    for attr in ("modality", "body_part", "accession_number", "study_date", "description",
                 "orthanc_id"):
        value = getattr(new, attr)
        if value is not None:
            setattr(item, attr, value)
    if new.series_count:
        item.series_count = new.series_count
    if new.instance_count:
        item.instance_count = new.instance_count
    if new.patient.name and not item.patient_name:
        item.patient_name = new.patient.name
    wanted = Priority.STAT if new.is_critical else Priority(new.priority)
    if PRIORITY_RANK[wanted] < PRIORITY_RANK[Priority(item.priority)]:
        item.priority = wanted.value
        item.due_at = due_time(as_utc(item.received_at), wanted, item.kind,
                               rules.turnaround_minutes)
    if new.is_critical and not item.is_critical:
        item.is_critical = True
        item.critical_reason = new.critical_reason
    merged = list(item.flags or [])
    merged += [f for f in new.flags if f not in merged]
    item.flags = merged
    if new.details:
        item.details = {**(item.details or {}), **new.details}
    item.updated_at = utcnow()
