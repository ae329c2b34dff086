"""Orders (issue 8): imaging/ECG orders, priors, status updates owed to the HIS, studies to
reconcile. Also merges the two heads (0002 lab, 0003 reports).

Revision ID: 0004
Revises: 0002, 0003
Create Date: 2026-11-26 06:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("sending_facility", sa.String(length=200), nullable=False),
        sa.Column("placer_order_number", sa.String(length=200), nullable=False),
        sa.Column("filler_order_number", sa.String(length=200), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=False),
        sa.Column("requested_procedure_id", sa.String(length=16), nullable=False),
        sa.Column("sps_id", sa.String(length=16), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("procedure_name", sa.String(length=200), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("body_part", sa.String(length=64), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduled_station_aet", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("ordering_clinician", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("patient_local_id", sa.String(length=64), nullable=True),
        sa.Column("patient_name", sa.String(length=200), nullable=False),
        sa.Column("patient_birth_date", sa.String(length=8), nullable=False),
        sa.Column("patient_sex", sa.String(length=1), nullable=False),
        sa.Column("worklist_item_id", sa.Integer(), nullable=True),
        sa.Column("raw_message_id", _BigId, nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["worklist_item_id"], ["worklist_items.id"]),
        sa.ForeignKeyConstraint(["raw_message_id"], ["lab_raw_messages.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("institution_code", "placer_order_number", name="uq_orders_placer"),
        sa.UniqueConstraint("accession_number", name="uq_orders_accession"),
    )
    op.create_index("ix_orders_worklist", "orders",
                    ["institution_code", "status", "scheduled_at"])
    op.create_index("ix_orders_patient", "orders", ["patient_id"])
    op.create_index("ix_orders_worklist_item_id", "orders", ["worklist_item_id"])
    op.create_table(
        "order_priors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("exam_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "source", "source_id", name="uq_order_priors"),
    )
    op.create_index("ix_order_priors_order_id", "order_priors", ["order_id"])
    op.create_table(
        "order_status_updates",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("control_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_order_status_updates_order_id", "order_status_updates", ["order_id"])
    op.create_table(
        "study_reconciliations",
        sa.Column("worklist_item_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("suggestions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolution", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["worklist_item_id"], ["worklist_items.id"]),
        sa.PrimaryKeyConstraint("worklist_item_id"),
    )


def downgrade() -> None:
    op.drop_table("study_reconciliations")
    op.drop_index("ix_order_status_updates_order_id", table_name="order_status_updates")
    op.drop_table("order_status_updates")
    op.drop_index("ix_order_priors_order_id", table_name="order_priors")
    op.drop_table("order_priors")
    op.drop_index("ix_orders_worklist_item_id", table_name="orders")
    op.drop_index("ix_orders_patient", table_name="orders")
    op.drop_index("ix_orders_worklist", table_name="orders")
    op.drop_table("orders")
