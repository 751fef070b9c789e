"""trigger_deliveries: webhook deliveries by id, stored before their run starts

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trigger_deliveries",
        sa.Column("trigger", sa.String(length=100), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("trigger", "delivery_id"),
    )
    with op.batch_alter_table("trigger_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trigger_deliveries_state"), ["state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_trigger_deliveries_received_at"), ["received_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("trigger_deliveries")
