"""runs: the update that started a run, and its command's process group

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("update_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("process_group", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("process_started", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("process_host", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_update_key"), ["update_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_update_key"))
        batch_op.drop_column("process_host")
        batch_op.drop_column("process_started")
        batch_op.drop_column("process_group")
        batch_op.drop_column("update_key")
