"""Report tables: reports and their signed versions, signatures, certificates and the community
CA, the recognition catalogue and QC status, repeat-order reasons, critical results of imaging
and ECG reports (lab ones live in ``lab_critical_alerts``), and delivery records.

Declared on :class:`hub.db.models.Base` so Alembic and ``Base.metadata`` see one schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base

_BigId = BigInteger().with_variant(Integer, "sqlite")


class CertificateAuthority(Base):
    """A CA whose certificates the hub trusts: the community CA it runs itself, or an imported
    hospital CA (then ``key_pem`` is empty: the hub cannot issue under it)."""

    __tablename__ = "report_cas"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    cert_pem: Mapped[str] = mapped_column(Text)
    # PKCS#8 PEM encrypted with a key derived from the hub secret; None for imported CAs.
    key_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    crl_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


class SigningCertificate(Base):
    """A user's X.509 signing certificate and (for hub-held keys) its encrypted private key."""

    __tablename__ = "report_certificates"
    __table_args__ = (Index("ix_report_cert_user", "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ca_id: Mapped[int | None] = mapped_column(ForeignKey("report_cas.id"), nullable=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)  # hex
    subject: Mapped[str] = mapped_column(String(400))
    algorithm: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    cert_pem: Mapped[str] = mapped_column(Text)
    key_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime]


class Report(Base):
    """The report of one worklist item; its signed states live in :class:`ReportVersion`."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    worklist_item_id: Mapped[int] = mapped_column(ForeignKey("worklist_items.id"), unique=True)
    template: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # signoff.ReportStatus
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    writer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verifier_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    # All to the minute, server clock (signoff.to_minute).
    exam_at: Mapped[datetime | None] = mapped_column(nullable=True)
    written_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    preliminary_at: Mapped[datetime | None] = mapped_column(nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    # Random, unguessable: printed as a QR code on the PDF for /verify/{code}.
    verify_code: Mapped[str] = mapped_column(String(64), unique=True)
    recognition_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReportVersion(Base):
    """One signed state of a report (preliminary, final, addendum, amendment); never changed."""

    __tablename__ = "report_versions"
    __table_args__ = (UniqueConstraint("report_id", "number", name="uq_report_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # signoff.VersionKind
    template: Mapped[str] = mapped_column(String(32))
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)  # addendum text
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    signed_at: Mapped[datetime]
    canonical: Mapped[str] = mapped_column(Text)  # the canonical JSON that was signed
    sha256: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    pdf_sha256: Mapped[str] = mapped_column(String(64), index=True)
    recognised: Mapped[bool] = mapped_column(Boolean, default=False)


class ReportSignature(Base):
    """A detached signature over a version's canonical JSON (the PDF carries its own PAdES one)."""

    __tablename__ = "report_signatures"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_versions.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(16))  # signoff.SignerRole
    certificate_id: Mapped[int] = mapped_column(ForeignKey("report_certificates.id"))
    algorithm: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)  # base64
    signed_at: Mapped[datetime]


class RecognitionItem(Base):
    """Catalogue of recognisable items (互认项目目录)."""

    __tablename__ = "recognition_catalogue"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(64))
    validity_days: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    body_part: Mapped[str | None] = mapped_column(String(64), nullable=True)
    service_code: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


class InstitutionQc(Base):
    """A QC accreditation period (质控合格) of an institution."""

    __tablename__ = "institution_qc"
    __table_args__ = (Index("ix_institution_qc", "institution_code", "valid_until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class RecognitionLookup(Base):
    """A clinician asked for recognised results before ordering; counted for the statistics."""

    __tablename__ = "recognition_lookups"
    __table_args__ = (Index("ix_recognition_lookup", "institution_code", "at"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    item_code: Mapped[str] = mapped_column(String(64))
    institution_code: Mapped[str] = mapped_column(String(32))  # the asker's
    username: Mapped[str] = mapped_column(String(64))
    found: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime]


class RepeatOrder(Base):
    """A recognised exam ordered again anyway, with its coded reason (重复检查原因)."""

    __tablename__ = "repeat_orders"
    __table_args__ = (Index("ix_repeat_order", "institution_code", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    item_code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))  # recognition.RepeatReason
    note: Mapped[str] = mapped_column(Text, default="")
    recognised_report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"),
                                                             nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    institution_code: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class ReportCriticalResult(Base):
    """A critical finding (危急值) in an imaging or ECG report: who reported, to whom, when."""

    __tablename__ = "report_critical_results"
    __table_args__ = (Index("ix_report_critical_status", "status", "raised_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    worklist_item_id: Mapped[int] = mapped_column(ForeignKey("worklist_items.id"), index=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), nullable=True)
    institution_code: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    finding: Mapped[str] = mapped_column(Text)
    reported_by: Mapped[str] = mapped_column(String(64))
    notify_to: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    raised_at: Mapped[datetime]
    notified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ack_channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)


class ReportDelivery(Base):
    """Where a signed version went: HL7 (outbound queue row), DICOM (Orthanc instance), FHIR."""

    __tablename__ = "report_deliveries"
    __table_args__ = (Index("ix_report_delivery_status", "channel", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))  # hl7 / dicom
    status: Mapped[str] = mapped_column(String(16))  # pending / sent / acked / failed / skipped
    outbound_control_id: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                                            index=True)
    orthanc_instance_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
