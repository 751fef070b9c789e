"""chat_models: the model a chat switched an llm agent to (/model)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_models",
        sa.Column("chat_id", sa.String(length=200), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("set_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "agent"),
    )


def downgrade() -> None:
    op.drop_table("chat_models")
