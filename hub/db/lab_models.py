"""Lab tables (HL7 bridge): raw messages, result sets, observations, orders, critical alerts.

Declared on :class:`hub.db.models.Base` so Alembic and ``Base.metadata`` see one schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db.models import Base

_BigId = BigInteger().with_variant(Integer, "sqlite")


class LabRawMessage(Base):
    """Every frame the bridge received, as bytes, with the ACK we sent (replayable).

    (sending facility, MSH-10) is unique: a re-sent message finds its row and gets the stored
    ACK again. Frames without a usable MSH (not HL7, broken frames, oversize) have NULL keys,
    which both SQLite and PostgreSQL allow many times in a unique constraint.
    """

    __tablename__ = "lab_raw_messages"
    __table_args__ = (
        UniqueConstraint("sending_facility", "control_id", name="uq_lab_raw_sender_control"),
        Index("ix_lab_raw_received", "received_at"),
        Index("ix_lab_raw_ack", "ack_code"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    received_at: Mapped[datetime]
    peer: Mapped[str] = mapped_column(String(64), default="")
    sending_facility: Mapped[str | None] = mapped_column(String(200), nullable=True)  # MSH-4
    sending_application: Mapped[str | None] = mapped_column(String(200), nullable=True)  # MSH-3
    control_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # MSH-10
    message_type: Mapped[str | None] = mapped_column(String(32), nullable=True)  # MSH-9
    version: Mapped[str | None] = mapped_column(String(16), nullable=True)  # MSH-12
    charset: Mapped[str | None] = mapped_column(String(32), nullable=True)  # codec used
    institution_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer, default=0)
    ack_code: Mapped[str] = mapped_column(String(2))  # AA / AE / AR, or "--" for no reply
    ack: Mapped[bytes] = mapped_column(LargeBinary, default=b"")  # as sent, in sender's charset
    error_location: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    replayed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class LabOrder(Base):
    """An order from a branch HIS for the central lab (OML^O21 / ORM^O01)."""

    __tablename__ = "lab_orders"
    __table_args__ = (
        UniqueConstraint("placer_order_number", "service_code", name="uq_lab_order_placer"),
        Index("ix_lab_order_filler", "filler_order_number"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    sending_facility: Mapped[str] = mapped_column(String(200))
    institution_code: Mapped[str] = mapped_column(String(32))
    placer_order_number: Mapped[str] = mapped_column(String(200))  # ORC-2 / OBR-2
    filler_order_number: Mapped[str | None] = mapped_column(String(200), nullable=True)
    service_code: Mapped[str] = mapped_column(String(200), default="")  # OBR-4.1
    service_name: Mapped[str] = mapped_column(String(200), default="")
    specimen_barcode: Mapped[str | None] = mapped_column(String(200), index=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # OrderStatus
    priority: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    patient_local_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ordered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    collected_at: Mapped[datetime | None] = mapped_column(nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resulted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    raw_message_id: Mapped[int] = mapped_column(ForeignKey("lab_raw_messages.id"))
    updated_at: Mapped[datetime]


class LabResultSet(Base):
    """One OBR of a result message; the worklist item points at it through its natural key."""

    __tablename__ = "lab_result_sets"
    __table_args__ = (
        UniqueConstraint("sending_facility", "filler_order_number", "service_code",
                         name="uq_lab_result_set"),
        Index("ix_lab_result_placer", "placer_order_number"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    sending_facility: Mapped[str] = mapped_column(String(200))
    institution_code: Mapped[str] = mapped_column(String(32))
    worklist_item_id: Mapped[int] = mapped_column(ForeignKey("worklist_items.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("lab_orders.id"), nullable=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    patient_local_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    placer_order_number: Mapped[str] = mapped_column(String(200), default="")
    filler_order_number: Mapped[str] = mapped_column(String(200))
    service_code: Mapped[str] = mapped_column(String(200), default="")
    service_name: Mapped[str] = mapped_column(String(200), default="")
    result_status: Mapped[str] = mapped_column(String(1))  # OBR-25
    priority: Mapped[str] = mapped_column(String(16))
    specimen_barcode: Mapped[str | None] = mapped_column(String(200), nullable=True)
    observed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(nullable=True)
    is_critical: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[list[Any]] = mapped_column(default=list)
    verified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    verified_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    raw_message_id: Mapped[int] = mapped_column(ForeignKey("lab_raw_messages.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LabObservation(Base):
    """One OBX: the current value. Earlier values live in :class:`LabObservationHistory`."""

    __tablename__ = "lab_observations"
    __table_args__ = (
        UniqueConstraint("result_set_id", "code", "sub_id", name="uq_lab_observation"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    # Looked up through uq_lab_observation, whose leading column this is: no index of its own.
    result_set_id: Mapped[int] = mapped_column(ForeignKey("lab_result_sets.id"))
    # Lets a batch add result sets and their observations and insert them in one flush.
    result_set: Mapped[LabResultSet] = relationship()
    set_id: Mapped[str] = mapped_column(String(32), default="")  # OBX-1
    value_type: Mapped[str] = mapped_column(String(16), default="")  # OBX-2
    code: Mapped[str] = mapped_column(String(200))  # OBX-3.1
    name: Mapped[str] = mapped_column(String(200), default="")  # OBX-3.2
    coding_system: Mapped[str] = mapped_column(String(200), default="")  # OBX-3.3
    sub_id: Mapped[str] = mapped_column(String(64), default="")  # OBX-4
    value: Mapped[str] = mapped_column(Text, default="")  # OBX-5
    numeric_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    comparator: Mapped[str] = mapped_column(String(8), default="")
    units: Mapped[str] = mapped_column(String(200), default="")  # OBX-6.1
    reference_range: Mapped[str] = mapped_column(Text, default="")  # OBX-7
    abnormal_flags: Mapped[list[Any]] = mapped_column(default=list)  # OBX-8
    result_status: Mapped[str] = mapped_column(String(1))  # OBX-11
    observed_at: Mapped[datetime | None] = mapped_column(nullable=True)  # OBX-14
    is_critical: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    raw_message_id: Mapped[int] = mapped_column(ForeignKey("lab_raw_messages.id"))
    updated_at: Mapped[datetime]


class LabObservationHistory(Base):
    """A value an observation had before a correction (OBX-11 = C) replaced it."""

    __tablename__ = "lab_observation_history"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("lab_observations.id"), index=True)
    observation: Mapped[LabObservation] = relationship()
    version: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(Text, default="")
    numeric_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    units: Mapped[str] = mapped_column(String(200), default="")
    reference_range: Mapped[str] = mapped_column(Text, default="")
    abnormal_flags: Mapped[list[Any]] = mapped_column(default=list)
    result_status: Mapped[str] = mapped_column(String(1))
    observed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    raw_message_id: Mapped[int] = mapped_column(ForeignKey("lab_raw_messages.id"))
    replaced_at: Mapped[datetime]
    replaced_by_message_id: Mapped[int] = mapped_column(ForeignKey("lab_raw_messages.id"))


class LabCriticalAlert(Base):
    """A critical value (危急值) that someone must be told about and must acknowledge.

    The bridge raises it (status ``open``); the reporting issue's flow sets ``notified_*``,
    ``acknowledged_*`` and ``escalated_*``.
    """

    __tablename__ = "lab_critical_alerts"
    __table_args__ = (Index("ix_lab_critical_status", "status", "raised_at"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("lab_observations.id"), index=True)
    observation: Mapped[LabObservation] = relationship()
    result_set_id: Mapped[int] = mapped_column(ForeignKey("lab_result_sets.id"))
    result_set: Mapped[LabResultSet] = relationship()
    worklist_item_id: Mapped[int] = mapped_column(ForeignKey("worklist_items.id"))
    institution_code: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    test_code: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Text)
    units: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    raised_at: Mapped[datetime]
    notified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    notified_to: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)


class LabOutbound(Base):
    """An ORU^R01 waiting to go to an institution's HIS, in order per patient."""

    __tablename__ = "lab_outbound"
    __table_args__ = (
        Index("ix_lab_outbound_queue", "status", "institution_code", "patient_key", "id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(32))
    patient_key: Mapped[str] = mapped_column(String(100))  # orders per patient
    result_set_id: Mapped[int | None] = mapped_column(ForeignKey("lab_result_sets.id"),
                                                      nullable=True)
    control_id: Mapped[str] = mapped_column(String(64), unique=True)
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending/acked/dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    ack_code: Mapped[str | None] = mapped_column(String(2), nullable=True)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    acked_at: Mapped[datetime | None] = mapped_column(nullable=True)
