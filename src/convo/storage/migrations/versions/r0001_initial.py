"""Initial schema: conversations, events, user settings and secrets.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-28

Migrations are append-only: never edit a released revision, add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False, server_default=""),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("selected_repository", sa.Text(), nullable=True),
        sa.Column("selected_branch", sa.Text(), nullable=True),
        sa.Column("git_provider", sa.String(32), nullable=True),
        sa.Column("trigger", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("llm_model", sa.Text(), nullable=True),
        sa.Column("accumulated_cost", sa.Float(), nullable=False, server_default="0"),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("pr_number", sa.JSON(), nullable=False),
        sa.Column("conversation_instructions", sa.Text(), nullable=True),
        sa.Column("desired_running", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("next_event_id", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_conversations"),
    )
    op.create_index(
        "ix_conversations_user_id_created_at", "conversations", ["user_id", "created_at"]
    )
    op.create_index("ix_conversations_desired_running", "conversations", ["desired_running"])

    op.create_table(
        "events",
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("timestamp", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name="fk_events_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "id", name="pk_events"),
    )

    for table in ("user_settings", "user_secrets"):
        op.create_table(
            table,
            sa.Column("user_id", sa.String(255), nullable=False),
            sa.Column("data", sa.JSON(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("user_id", name=f"pk_{table}"),
        )


def downgrade() -> None:
    op.drop_table("user_secrets")
    op.drop_table("user_settings")
    op.drop_table("events")
    op.drop_index("ix_conversations_desired_running", table_name="conversations")
    op.drop_index("ix_conversations_user_id_created_at", table_name="conversations")
    op.drop_table("conversations")
