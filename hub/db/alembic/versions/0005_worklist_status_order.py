"""worklist: index ordered within a status

A worklist filtered by status (e.g. every "ready" item) otherwise reads all open items and sorts
them; with this index both halves of the page walk only that status, in order.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worklist_items") as batch_op:
        batch_op.create_index("ix_worklist_status_order",
                              ["status", "priority_rank", "due_at", "id"])


def downgrade() -> None:
    with op.batch_alter_table("worklist_items") as batch_op:
        batch_op.drop_index("ix_worklist_status_order")
