"""Conversations remember the providers their loop was started with, for resume.

Revision ID: 0002_providers_set
Revises: 0001_initial
Create Date: 2026-11-28

Migrations are append-only: never edit a released revision, add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_providers_set"
down_revision: str | None = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("providers_set", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("providers_set")
