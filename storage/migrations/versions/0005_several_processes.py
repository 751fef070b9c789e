"""several processes: heartbeats, the process that owns a run or update, a thread's agent

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processes",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("started_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("processes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processes_heartbeat_at"), ["heartbeat_at"], unique=False
        )
    op.create_table(
        "thread_agents",
        sa.Column("thread_id", sa.String(length=200), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("thread_id"),
    )
    with op.batch_alter_table("thread_agents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_thread_agents_updated_at"), ["updated_at"], unique=False
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_owner"), ["owner"], unique=False)
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("owner")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_owner"))
        batch_op.drop_column("owner")
    with op.batch_alter_table("thread_agents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_thread_agents_updated_at"))
    op.drop_table("thread_agents")
    with op.batch_alter_table("processes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processes_heartbeat_at"))
    op.drop_table("processes")
