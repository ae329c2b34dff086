"""indexes for the batch write path: patients by birth date; one fewer on observations

Every new patient is compared with the existing patients born on the same day (link
suggestions, hub.services.patients); without an index that is a scan of the whole table.

The lab bridge writes six or more observations per message; their separate index on
result_set_id duplicated the leading column of uq_lab_observation (result_set_id, code, sub_id),
which serves the same lookups.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patients") as batch_op:
        batch_op.create_index("ix_patients_birth_date", ["birth_date"])
    with op.batch_alter_table("lab_observations") as batch_op:
        batch_op.drop_index("ix_lab_observations_result_set_id")


def downgrade() -> None:
    with op.batch_alter_table("lab_observations") as batch_op:
        batch_op.create_index("ix_lab_observations_result_set_id", ["result_set_id"])
    with op.batch_alter_table("patients") as batch_op:
        batch_op.drop_index("ix_patients_birth_date")
