"""scheduler and outbox: job state and claims, the scheduler's heartbeat, the outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:44:56

`jobs.paused` becomes `jobs.state`; existing rows keep their meaning. Columns added
to tables that may hold rows get a server default, so the upgrade works on a live
database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_when = storage.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "job_fires",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("scheduled_for", _when(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("missed", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", _when(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "scheduled_for"),
    )
    with op.batch_alter_table("job_fires", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_fires_claimed_at"), ["claimed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_fires_run_id"), ["run_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("chat_id", sa.String(length=200), nullable=False),
        sa.Column("thread_id", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _when(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", _when(timezone=True), nullable=False),
        sa.Column("sent_at", _when(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_state_next_attempt_at", ["state", "next_attempt_at"], unique=False
        )

    op.create_table(
        "scheduler_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("since", _when(timezone=True), nullable=False),
        sa.Column("heartbeat_at", _when(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_to", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("state", sa.String(length=20), nullable=False, server_default="active")
        )
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("next_run_at", _when(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("active_since", _when(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("updated_at", _when(timezone=True), nullable=True))
    op.execute("UPDATE jobs SET state = 'paused' WHERE paused")
    op.execute("UPDATE jobs SET active_since = created_at, updated_at = created_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("active_since", existing_type=_when(timezone=True), nullable=False)
        batch_op.alter_column("updated_at", existing_type=_when(timezone=True), nullable=False)
        batch_op.create_index("ix_jobs_state_next_run_at", ["state", "next_run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_updated_at"), ["updated_at"], unique=False)
        batch_op.drop_column("paused")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivered", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("delivered")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE jobs SET paused = (state = 'paused')")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_updated_at"))
        batch_op.drop_index("ix_jobs_state_next_run_at")
        for column in (
            "updated_at",
            "active_since",
            "last_status",
            "next_run_at",
            "version",
            "state",
            "report_to",
        ):
            batch_op.drop_column(column)

    op.drop_table("scheduler_state")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state_next_attempt_at")
    op.drop_table("outbox")
    with op.batch_alter_table("job_fires", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_fires_run_id"))
        batch_op.drop_index(batch_op.f("ix_job_fires_claimed_at"))
    op.drop_table("job_fires")
