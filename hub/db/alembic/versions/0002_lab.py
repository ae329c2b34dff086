"""Lab HL7 bridge tables: raw messages, orders, result sets, observations (with history),
critical-value alerts, outbound queue.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:47:07.393846
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lab_raw_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("sending_facility", sa.String(length=200), nullable=True),
        sa.Column("sending_application", sa.String(length=200), nullable=True),
        sa.Column("control_id", sa.String(length=64), nullable=True),
        sa.Column("message_type", sa.String(length=32), nullable=True),
        sa.Column("version", sa.String(length=16), nullable=True),
        sa.Column("charset", sa.String(length=32), nullable=True),
        sa.Column("institution_code", sa.String(length=32), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("ack", sa.LargeBinary(), nullable=False),
        sa.Column("error_location", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sending_facility", "control_id", name="uq_lab_raw_sender_control"),
    )
    with op.batch_alter_table("lab_raw_messages", schema=None) as batch_op:
        batch_op.create_index("ix_lab_raw_ack", ["ack_code"], unique=False)
        batch_op.create_index("ix_lab_raw_received", ["received_at"], unique=False)

    op.create_table(
        "lab_orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sending_facility", sa.String(length=200), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("placer_order_number", sa.String(length=200), nullable=False),
        sa.Column("filler_order_number", sa.String(length=200), nullable=True),
        sa.Column("service_code", sa.String(length=200), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=False),
        sa.Column("specimen_barcode", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("patient_local_id", sa.String(length=64), nullable=True),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resulted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "raw_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["raw_message_id"],
            ["lab_raw_messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("placer_order_number", "service_code", name="uq_lab_order_placer"),
    )
    with op.batch_alter_table("lab_orders", schema=None) as batch_op:
        batch_op.create_index("ix_lab_order_filler", ["filler_order_number"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_lab_orders_specimen_barcode"), ["specimen_barcode"], unique=False
        )

    op.create_table(
        "lab_result_sets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sending_facility", sa.String(length=200), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("worklist_item_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("patient_local_id", sa.String(length=64), nullable=True),
        sa.Column("placer_order_number", sa.String(length=200), nullable=False),
        sa.Column("filler_order_number", sa.String(length=200), nullable=False),
        sa.Column("service_code", sa.String(length=200), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=False),
        sa.Column("result_status", sa.String(length=1), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("specimen_barcode", sa.String(length=200), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_critical", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_by", sa.String(length=64), nullable=True),
        sa.Column(
            "raw_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["lab_orders.id"],
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["raw_message_id"],
            ["lab_raw_messages.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worklist_item_id"],
            ["worklist_items.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "sending_facility", "filler_order_number", "service_code", name="uq_lab_result_set"
        ),
    )
    with op.batch_alter_table("lab_result_sets", schema=None) as batch_op:
        batch_op.create_index("ix_lab_result_placer", ["placer_order_number"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_lab_result_sets_worklist_item_id"), ["worklist_item_id"], unique=False
        )

    op.create_table(
        "lab_observations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "result_set_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("set_id", sa.String(length=32), nullable=False),
        sa.Column("value_type", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("coding_system", sa.String(length=200), nullable=False),
        sa.Column("sub_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("numeric_value", sa.Float(), nullable=True),
        sa.Column("comparator", sa.String(length=8), nullable=False),
        sa.Column("units", sa.String(length=200), nullable=False),
        sa.Column("reference_range", sa.Text(), nullable=False),
        sa.Column("abnormal_flags", sa.JSON(), nullable=False),
        sa.Column("result_status", sa.String(length=1), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_critical", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "raw_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["raw_message_id"],
            ["lab_raw_messages.id"],
        ),
        sa.ForeignKeyConstraint(
            ["result_set_id"],
            ["lab_result_sets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("result_set_id", "code", "sub_id", name="uq_lab_observation"),
    )
    with op.batch_alter_table("lab_observations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lab_observations_result_set_id"), ["result_set_id"], unique=False
        )

    op.create_table(
        "lab_outbound",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=100), nullable=False),
        sa.Column(
            "result_set_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("control_id", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ack_code", sa.String(length=2), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["result_set_id"],
            ["lab_result_sets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("control_id"),
    )
    with op.batch_alter_table("lab_outbound", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lab_outbound_queue",
            ["status", "institution_code", "patient_key", "id"],
            unique=False,
        )

    op.create_table(
        "lab_critical_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "observation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "result_set_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("worklist_item_id", sa.Integer(), nullable=False),
        sa.Column("institution_code", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("test_code", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("units", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_to", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["observation_id"],
            ["lab_observations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["result_set_id"],
            ["lab_result_sets.id"],
        ),
        sa.ForeignKeyConstraint(
            ["worklist_item_id"],
            ["worklist_items.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lab_critical_alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lab_critical_alerts_observation_id"), ["observation_id"], unique=False
        )
        batch_op.create_index("ix_lab_critical_status", ["status", "raised_at"], unique=False)

    op.create_table(
        "lab_observation_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "observation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("numeric_value", sa.Float(), nullable=True),
        sa.Column("units", sa.String(length=200), nullable=False),
        sa.Column("reference_range", sa.Text(), nullable=False),
        sa.Column("abnormal_flags", sa.JSON(), nullable=False),
        sa.Column("result_status", sa.String(length=1), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "raw_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "replaced_by_message_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["observation_id"],
            ["lab_observations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["raw_message_id"],
            ["lab_raw_messages.id"],
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_message_id"],
            ["lab_raw_messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lab_observation_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lab_observation_history_observation_id"),
            ["observation_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("lab_observation_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lab_observation_history_observation_id"))

    op.drop_table("lab_observation_history")
    with op.batch_alter_table("lab_critical_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_lab_critical_status")
        batch_op.drop_index(batch_op.f("ix_lab_critical_alerts_observation_id"))

    op.drop_table("lab_critical_alerts")
    with op.batch_alter_table("lab_outbound", schema=None) as batch_op:
        batch_op.drop_index("ix_lab_outbound_queue")

    op.drop_table("lab_outbound")
    with op.batch_alter_table("lab_observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lab_observations_result_set_id"))

    op.drop_table("lab_observations")
    with op.batch_alter_table("lab_result_sets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lab_result_sets_worklist_item_id"))
        batch_op.drop_index("ix_lab_result_placer")

    op.drop_table("lab_result_sets")
    with op.batch_alter_table("lab_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lab_orders_specimen_barcode"))
        batch_op.drop_index("ix_lab_order_filler")

    op.drop_table("lab_orders")
    with op.batch_alter_table("lab_raw_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_lab_raw_received")
        batch_op.drop_index("ix_lab_raw_ack")

    op.drop_table("lab_raw_messages")
