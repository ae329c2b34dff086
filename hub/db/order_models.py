"""Order tables (issue 8): imaging/ECG orders, their priors, status messages owed to the placer,
and studies waiting for reconciliation.

Declared on :class:`hub.db.models.Base` so Alembic and ``Base.metadata`` see one schema
(migration ``0004``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base

_BigId = BigInteger().with_variant(Integer, "sqlite")


class ImagingOrder(Base):
    """An imaging or ECG order from a branch HIS (HL7) or the API, with its scheduled step.

    (institution, placer order number) is unique: the placer's number identifies the order to
    the HIS, and the report must come back quoting it. The accession number is unique across
    the hub: the study, the report and the order meet on it.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("institution_code", "placer_order_number", name="uq_orders_placer"),
        UniqueConstraint("accession_number", name="uq_orders_accession"),
        Index("ix_orders_worklist", "institution_code", "status", "scheduled_at"),
        Index("ix_orders_patient", "patient_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))              # OrderKind
    status: Mapped[str] = mapped_column(String(16))            # OrderStatus
    institution_code: Mapped[str] = mapped_column(String(32))
    sending_facility: Mapped[str] = mapped_column(String(200), default="")  # MSH-4, or "api"
    placer_order_number: Mapped[str] = mapped_column(String(200))  # ORC-2 / OBR-2 (EI)
    filler_order_number: Mapped[str] = mapped_column(String(200), default="")  # ORC-3
    accession_number: Mapped[str] = mapped_column(String(16))  # IPC-1 / OBR-18, or assigned
    requested_procedure_id: Mapped[str] = mapped_column(String(16), default="")  # IPC-2/OBR-19
    sps_id: Mapped[str] = mapped_column(String(16), default="")  # IPC-4 / OBR-20
    study_instance_uid: Mapped[str] = mapped_column(String(64))  # IPC-3 / ZDS-1, or generated
    procedure_code: Mapped[str] = mapped_column(String(64), default="")   # OBR-4.1
    procedure_name: Mapped[str] = mapped_column(String(200), default="")  # OBR-4.2
    modality: Mapped[str] = mapped_column(String(16))          # IPC-5 / OBR-24
    body_part: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(nullable=True)  # TQ1-7 / ORC-7.4
    scheduled_station_aet: Mapped[str] = mapped_column(String(16), default="")  # IPC-9
    priority: Mapped[str] = mapped_column(String(16))          # Priority
    ordering_clinician: Mapped[str] = mapped_column(String(200), default="")  # ORC-12 / OBR-16
    reason: Mapped[str] = mapped_column(Text, default="")      # OBR-31
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    patient_local_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    patient_name: Mapped[str] = mapped_column(String(200), default="")
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")  # YYYYMMDD
    patient_sex: Mapped[str] = mapped_column(String(1), default="")
    worklist_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("worklist_items.id"), nullable=True, index=True)
    raw_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("lab_raw_messages.id"), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    history: Mapped[list[Any]] = mapped_column(default=list)  # [{at, event, from, to, by}]


class OrderPrior(Base):
    """An earlier recognised result of the same body region, offered before the exam."""

    __tablename__ = "order_priors"
    __table_args__ = (UniqueConstraint("order_id", "source", "source_id",
                                       name="uq_order_priors"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))     # report / lab
    source_id: Mapped[int] = mapped_column(Integer)     # report id / result set id
    item_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    item_code: Mapped[str] = mapped_column(String(64))
    institution_code: Mapped[str] = mapped_column(String(32))
    exam_at: Mapped[datetime]
    valid_until: Mapped[datetime]
    found_at: Mapped[datetime]


class OrderStatusUpdate(Base):
    """A status change owed to the placer's HIS (outbox).

    Written in the transaction that changes the order; turned into an HL7 message on the LIS
    bridge's outbound queue by :func:`hub.services.orders.flush_status_updates`, which knows
    the HIS endpoints. Rows of institutions without an endpoint become ``skipped``.
    """

    __tablename__ = "order_status_updates"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))     # OrderStatus sent
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending/queued/skipped
    control_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime]


class StudyReconciliation(Base):
    """An imaging study that arrived without a matching order: a person picks order or patient."""

    __tablename__ = "study_reconciliations"

    worklist_item_id: Mapped[int] = mapped_column(ForeignKey("worklist_items.id"),
                                                  primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / resolved
    reason: Mapped[str] = mapped_column(String(200))
    suggestions: Mapped[list[Any]] = mapped_column(default=list)     # order ids
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolution: Mapped[dict[str, Any]] = mapped_column(default=dict)
