"""Conversations carry their agent's last state, so that a list can say what happened.

Revision ID: 0003_agent_state
Revises: 0002_providers_set
Create Date: 2026-11-29

Migrations are append-only: never edit a released revision, add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_agent_state"
down_revision: str | None = "0002_providers_set"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("agent_state", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("agent_state")
