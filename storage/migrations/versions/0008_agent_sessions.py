"""agent_sessions: a coding agent's session per chat (or thread), resumed by its id

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_sessions",
        sa.Column("chat_key", sa.String(length=400), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("cost_total", sa.Float(), nullable=False),
        sa.Column("tokens_in", sa.BigInteger(), nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), nullable=False),
        sa.Column("started_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_key", "agent"),
    )
    op.create_index("ix_agent_sessions_used_at", "agent_sessions", ["used_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_agent_sessions_used_at", table_name="agent_sessions")
    op.drop_table("agent_sessions")
