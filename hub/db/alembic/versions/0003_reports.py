"""Report tables: reports, signed versions, signatures, certificates and CAs, recognition
catalogue and institution QC, recognition lookups and repeat orders, imaging/ECG critical
results, delivery records. Seeds the default recognition catalogue.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26 06:15:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

# The default 互认 catalogue; validity in days from the exam. Each community edits its own list
# (PUT /api/recognition/catalogue/{code}); these are common county-level starting values.
DEFAULT_CATALOGUE = [
    # code, name, kind, modality, body_part, service_code, validity_days
    ("DR-CHEST", "胸部X线摄影(DR)", "imaging", "DX", "CHEST", None, 90),
    ("CT-CHEST", "胸部CT平扫", "imaging", "CT", "CHEST", None, 180),
    ("CT-HEAD", "头颅CT平扫", "imaging", "CT", "HEAD", None, 180),
    ("US-ABD", "腹部超声", "imaging", "US", "ABDOMEN", None, 30),
    ("ECG-REST", "静息十二导联心电图", "ecg", None, None, None, 30),
    ("LAB-CHEM", "生化检验", "lab", None, None, "CHEM", 7),
    ("LAB-CBC", "血常规", "lab", None, None, "CBC", 3),
]


def upgrade() -> None:
    op.create_table(
        "institution_qc",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_institution_qc", "institution_qc", ["institution_code", "valid_until"], unique=False
    )
    op.create_table(
        "recognition_catalogue",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("body_part", sa.String(length=64), nullable=True),
        sa.Column("service_code", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "report_cas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_pem", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("crl_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "recognition_lookups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("found", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_recognition_lookup", "recognition_lookups", ["institution_code", "at"], unique=False
    )
    op.create_table(
        "report_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=True),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_pem", sa.Text(), nullable=True),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ca_id"],
            ["report_cas.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("serial"),
    )
    op.create_index(
        "ix_report_cert_user", "report_certificates", ["user_id", "revoked_at"], unique=False
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worklist_item_id", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("impression", sa.Text(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("writer_id", sa.Integer(), nullable=False),
        sa.Column("verifier_id", sa.Integer(), nullable=True),
        sa.Column("exam_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("preliminary_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("verify_code", sa.String(length=64), nullable=False),
        sa.Column("recognition_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["verifier_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worklist_item_id"],
            ["worklist_items.id"],
        ),
        sa.ForeignKeyConstraint(
            ["writer_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("verify_code"),
        sa.UniqueConstraint("worklist_item_id"),
    )
    op.create_table(
        "repeat_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recognised_report_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["recognised_report_id"],
            ["reports.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_repeat_order", "repeat_orders", ["institution_code", "created_at"], unique=False
    )
    op.create_table(
        "report_critical_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worklist_item_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("finding", sa.Text(), nullable=False),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("notify_to", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("ack_channel", sa.String(length=16), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worklist_item_id"],
            ["worklist_items.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_report_critical_results_worklist_item_id"),
        "report_critical_results",
        ["worklist_item_id"],
        unique=False,
    )
    op.create_index(
        "ix_report_critical_status",
        "report_critical_results",
        ["status", "raised_at"],
        unique=False,
    )
    op.create_table(
        "report_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outbound_control_id", sa.String(length=64), nullable=True),
        sa.Column("orthanc_instance_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_report_deliveries_outbound_control_id"),
        "report_deliveries",
        ["outbound_control_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_report_deliveries_report_id"), "report_deliveries", ["report_id"], unique=False
    )
    op.create_index(
        "ix_report_delivery_status", "report_deliveries", ["channel", "status"], unique=False
    )
    op.create_table(
        "report_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("template", sa.String(length=32), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("impression", sa.Text(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("canonical", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=False),
        sa.Column("recognised", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id", "number", name="uq_report_version"),
    )
    op.create_index(
        op.f("ix_report_versions_pdf_sha256"), "report_versions", ["pdf_sha256"], unique=False
    )
    op.create_index(
        op.f("ix_report_versions_report_id"), "report_versions", ["report_id"], unique=False
    )
    op.create_table(
        "report_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["report_certificates.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["report_versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_report_signatures_version_id"), "report_signatures", ["version_id"], unique=False
    )

    catalogue = sa.table(
        "recognition_catalogue",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("scope", sa.String),
        sa.column("validity_days", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("modality", sa.String),
        sa.column("body_part", sa.String),
        sa.column("service_code", sa.String),
        sa.column("active", sa.Boolean),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        catalogue,
        [
            {
                "code": c,
                "name": n,
                "scope": "医共体HR",
                "validity_days": days,
                "kind": k,
                "modality": m,
                "body_part": b,
                "service_code": s,
                "active": True,
                "updated_at": now,
            }
            for c, n, k, m, b, s, days in DEFAULT_CATALOGUE
        ],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_report_signatures_version_id"), table_name="report_signatures")
    op.drop_table("report_signatures")
    op.drop_index(op.f("ix_report_versions_report_id"), table_name="report_versions")
    op.drop_index(op.f("ix_report_versions_pdf_sha256"), table_name="report_versions")
    op.drop_table("report_versions")
    op.drop_index("ix_report_delivery_status", table_name="report_deliveries")
    op.drop_index(op.f("ix_report_deliveries_report_id"), table_name="report_deliveries")
    op.drop_index(op.f("ix_report_deliveries_outbound_control_id"), table_name="report_deliveries")
    op.drop_table("report_deliveries")
    op.drop_index("ix_report_critical_status", table_name="report_critical_results")
    op.drop_index(
        op.f("ix_report_critical_results_worklist_item_id"), table_name="report_critical_results"
    )
    op.drop_table("report_critical_results")
    op.drop_index("ix_repeat_order", table_name="repeat_orders")
    op.drop_table("repeat_orders")
    op.drop_table("reports")
    op.drop_index("ix_report_cert_user", table_name="report_certificates")
    op.drop_table("report_certificates")
    op.drop_index("ix_recognition_lookup", table_name="recognition_lookups")
    op.drop_table("recognition_lookups")
    op.drop_table("report_cas")
    op.drop_table("recognition_catalogue")
    op.drop_index("ix_institution_qc", table_name="institution_qc")
    op.drop_table("institution_qc")
