"""The one door into the reading worklist.

Every path that creates a reading item calls :func:`enqueue`: the Orthanc change feed, an ECG after
ingest, a lab result set from the HL7 edge, a manual re-read. It is idempotent on the item's
natural key (Study Instance UID, ECG SOP Instance UID, facility + filler order number) because the
change feed and Celery may both deliver twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.clock import as_utc, utcnow
from hub.db.models import Institution, WorklistItem
from hub.domain.priority import PRIORITY_RANK, Priority, specialty_for
from hub.domain.turnaround import due_time
from hub.domain.worklist import ItemKind, ReadingState
from hub.services.patients import PatientRef, resolve_patient

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

    flags = list(new.flags)
    inst_code = new.institution_code
    if not inst_code or session.scalar(
        select(Institution.id).where(Institution.code == inst_code)
    ) is None:
        flags.append(f"unknown institution {inst_code!r}" if inst_code else "unknown institution")
        inst_code = inst_code or UNKNOWN_INSTITUTION
    if not new.patient.local_id and not new.patient.national_id:
        flags.append("missing patient ID")
    patient = resolve_patient(session, inst_code, new.patient)

    now = utcnow()
    received = new.received_at or now
    priority = Priority.STAT if new.is_critical else Priority(new.priority)
    item = WorklistItem(
        kind=kind.value,
        natural_key=new.natural_key,
        status=(ReadingState.READY if new.ready else ReadingState.RECEIVING).value,
        priority=priority.value,
        specialty=specialty_for(kind, new.modality, rules.specialty_by_modality).value,
        institution_code=inst_code,
        patient_id=patient.id if patient else None,
        patient_local_id=new.patient.local_id,
        patient_name=new.patient.name,
        accession_number=new.accession_number,
        modality=new.modality,
        body_part=new.body_part,
        description=new.description,
        study_date=new.study_date,
        series_count=new.series_count,
        instance_count=new.instance_count,
        orthanc_id=new.orthanc_id,
        received_at=received,
        due_at=due_time(received, priority, kind, rules.turnaround_minutes),
        is_stable=new.ready,
        is_critical=new.is_critical,
        critical_reason=new.critical_reason,
        flags=flags,
        details=dict(new.details),
        updated_at=now,
    )
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


def _find(session: Session, kind: ItemKind, key: str) -> WorklistItem | None:
    return session.scalar(
        select(WorklistItem).where(WorklistItem.kind == kind.value, WorklistItem.natural_key == key)
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
