"""Conversations carry the lease of the node that runs them (cluster mode): its owner, a
fencing token that grows at every acquire, and its expiry by the database's clock.

Revision ID: 0005_leases
Revises: 0004_idempotency_key
Create Date: 2026-11-29

Migrations are append-only: never edit a released revision, add a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_leases"
down_revision: str | None = "0004_idempotency_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("lease_token", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("lease_expires_at", sa.Float(), nullable=True))
    op.create_index("ix_conversations_lease_owner", "conversations", ["lease_owner"])


def downgrade() -> None:
    op.drop_index("ix_conversations_lease_owner", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_token")
        batch.drop_column("lease_owner")
