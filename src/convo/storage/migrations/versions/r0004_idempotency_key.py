"""Conversations remember the Idempotency-Key of the create that made them, unique per user,
so that a retried create finds the conversation instead of making a second one.

Revision ID: 0004_idempotency_key
Revises: 0003_agent_state
Create Date: 2026-11-29

Migrations are append-only: never edit a released revision, add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_idempotency_key"
down_revision: str | None = "0003_agent_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.create_index(
        "ix_conversations_user_id_idempotency_key",
        "conversations",
        ["user_id", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_user_id_idempotency_key", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("idempotency_key")
