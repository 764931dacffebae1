"""The SQL tables. The migrations in ``migrations/versions`` must build exactly this schema
(``tests/storage`` compares them); change both together, by a new revision only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.types import TypeDecorator

from convo.storage.codec import as_utc

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC.

    PostgreSQL stores ``timestamptz``; SQLite has no zone, so values are stored as naive UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, _dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


conversations = Table(
    "conversations",
    metadata,
    Column("conversation_id", String(64), primary_key=True),
    Column("user_id", String(255), nullable=False, server_default=""),
    Column("title", Text, nullable=False),
    Column("selected_repository", Text),
    Column("selected_branch", Text),
    Column("git_provider", String(32)),
    Column("trigger", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_updated_at", UtcDateTime, nullable=False),
    Column("llm_model", Text),
    Column("accumulated_cost", Float, nullable=False, server_default="0"),
    Column("prompt_tokens", BigInteger, nullable=False, server_default="0"),
    Column("completion_tokens", BigInteger, nullable=False, server_default="0"),
    Column("total_tokens", BigInteger, nullable=False, server_default="0"),
    Column("pr_number", JSON, nullable=False),
    Column("conversation_instructions", Text),
    Column("desired_running", Boolean, nullable=False, server_default=false()),
    Column("providers_set", JSON, nullable=True),
    # AgentState of the last agent_state_changed event, set by EventStore.append.
    Column("agent_state", String(32), nullable=True),
    # The Idempotency-Key header of the create that made it (None: none given).
    Column("idempotency_key", String(255), nullable=True),
    # The id the next appended event gets; only EventStore.append moves it.
    Column("next_event_id", Integer, nullable=False, server_default="0"),
    # Cluster mode: the lease of the node whose loop runs it (leases.py). The token grows by
    # one at every acquire; a loop's writes carry the token it got, and are refused once it
    # is not the current one. The expiry is in seconds since the epoch, by the database's
    # clock (never a node's).
    Column("lease_owner", String(255), nullable=True),
    Column("lease_token", BigInteger, nullable=False, server_default="0"),
    Column("lease_expires_at", Float, nullable=True),
    Index(None, "user_id", "created_at"),
    Index(None, "desired_running"),
    Index(None, "lease_owner"),
    Index(None, "user_id", "idempotency_key", unique=True),
)

events = Table(
    "events",
    metadata,
    Column(
        "conversation_id",
        String(64),
        ForeignKey("conversations.conversation_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("id", Integer, primary_key=True, autoincrement=False),
    # As the event carries it (ISO 8601); kept as text so old events load byte for byte.
    Column("timestamp", String(64), nullable=False),
    # Event.to_wire() of the stored event.
    Column("payload", JSON, nullable=False),
)

user_settings = Table(
    "user_settings",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

user_secrets = Table(
    "user_secrets",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
