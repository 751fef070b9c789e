"""approvals: policy snapshot, scope (approve for the conversation), preview, escalation

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("scope", sa.String(length=20), nullable=False, server_default="once")
        )
        batch_op.add_column(sa.Column("preview", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("escalated_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("preview")
        batch_op.drop_column("scope")
        batch_op.drop_column("policy")
