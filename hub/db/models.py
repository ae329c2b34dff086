"""SQLAlchemy 2 table models. Routes never return these directly (see hub/api/schemas.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from hub.domain.priority import PRIORITY_RANK, Priority
from hub.domain.worklist import OPEN_STATES

OPEN_STATES_SQL = "(" + ", ".join(f"'{s.value}'" for s in OPEN_STATES) + ")"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    ae_titles: Mapped[list[Any]] = mapped_column(default=list)
    hl7_facilities: Mapped[list[Any]] = mapped_column(default=list)


class Patient(Base):
    """One person across the whole medical community."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    birth_date: Mapped[date | None] = mapped_column(Date, index=True, nullable=True)
    sex: Mapped[str | None] = mapped_column(String(1), nullable=True)
    national_id: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    insurance_no: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    # Set when a person confirmed this record is the same patient as another.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    created_at: Mapped[datetime]

    identifiers: Mapped[list[PatientIdentifier]] = relationship(back_populates="patient")


class PatientIdentifier(Base):
    """A branch's local patient ID, linked to one community-wide patient."""

    __tablename__ = "patient_identifiers"
    __table_args__ = (UniqueConstraint("institution_code", "local_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)

    patient: Mapped[Patient] = relationship(back_populates="identifiers")


class PatientLinkSuggestion(Base):
    """Name + birth date + sex matched: a person confirms or rejects the merge."""

    __tablename__ = "patient_link_suggestions"
    __table_args__ = (UniqueConstraint("patient_id", "candidate_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime]


class WorklistItem(Base):
    __tablename__ = "worklist_items"
    __table_args__ = (
        UniqueConstraint("kind", "natural_key"),
        # The worklist order is (overdue first, priority, due time). Overdue items are open ones
        # past due: the partial index serves that half, the full one the rest (see
        # hub.services.worklist.list_items).
        Index("ix_worklist_open_order", "priority_rank", "due_at", "id",
              postgresql_where=text(f"status IN {OPEN_STATES_SQL}"),
              sqlite_where=text(f"status IN {OPEN_STATES_SQL}")),
        Index("ix_worklist_order", "priority_rank", "due_at", "id"),
        Index("ix_worklist_status_order", "status", "priority_rank", "due_at", "id"),
        Index("ix_worklist_inst", "institution_code", "status"),
        Index("ix_worklist_patient", "patient_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Study Instance UID, ECG SOP Instance UID, or facility + filler order number.
    natural_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    # Sort key kept in step with ``priority`` by the validator below (0 = stat).
    priority_rank: Mapped[int] = mapped_column(SmallInteger)
    specialty: Mapped[str] = mapped_column(String(16))
    institution_code: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    patient_local_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    patient_name: Mapped[str] = mapped_column(String(200), default="")
    accession_number: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    modality: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body_part: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    study_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    series_count: Mapped[int] = mapped_column(Integer, default=0)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    orthanc_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime]
    due_at: Mapped[datetime]
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    is_stable: Mapped[bool] = mapped_column(Boolean, default=False)
    is_critical: Mapped[bool] = mapped_column(Boolean, default=False)
    critical_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Problems a person must resolve (unknown AE title, missing patient ID, ...).
    flags: Mapped[list[Any]] = mapped_column(default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]

    @validates("priority")
    def _rank(self, _key: str, value: str) -> str:
        self.priority_rank = PRIORITY_RANK[Priority(value)]
        return value


class StudyManifest(Base):
    """What a branch node says it sent; the item is ready only when Orthanc holds all of it."""

    __tablename__ = "study_manifests"

    study_instance_uid: Mapped[str] = mapped_column(String(128), primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(32))
    instance_uids: Mapped[list[Any]] = mapped_column(default=list)
    series: Mapped[dict[str, Any]] = mapped_column(default=dict)
    instance_count: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime]


class StudyOrigin(Base):
    """Which institution sent a study, recorded by the node (the modality may fill in nothing)."""

    __tablename__ = "study_origins"

    study_instance_uid: Mapped[str] = mapped_column(String(128), primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(32))
    source_aet: Mapped[str | None] = mapped_column(String(16), nullable=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    institution_code: Mapped[str] = mapped_column(String(32))
    rank: Mapped[str | None] = mapped_column(String(32), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """Append-only, hash-chained: hash = sha256(prev_hash + canonical row).

    Writers insert rows unsealed; the sealer gives each committed row its place in the chain
    (``chain_seq``) and its hashes shortly after (hub.audit.seal).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime]
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    institution_code: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    client: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ChangeCursor(Base):
    """Last Orthanc /changes Seq fully processed, so a restarted worker resumes there."""

    __tablename__ = "change_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]


class DeadLetter(Base):
    """A task that failed for good, kept for a person to inspect and replay."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_name: Mapped[str] = mapped_column(String(200))
    task_id: Mapped[str] = mapped_column(String(64))
    args: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime]
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
