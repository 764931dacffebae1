"""SQL implementations of the storage protocols over one SQLAlchemy async engine.

Every SQLAlchemy or driver error is translated into StorageError (``sql_common``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convo.domain.conversation import (
    ConversationMetadata,
    ConversationTrigger,
    UserSecrets,
    UserSettings,
    utcnow,
)
from convo.domain.events import Event, now_iso
from convo.errors import LeaseLost, RecordNotFound
from convo.storage import codec
from convo.storage.at_rest import Sealer, is_sealed
from convo.storage.base import (
    ConversationPage,
    ConversationStore,
    EventStore,
    LeaseStore,
    SettingsStore,
)
from convo.storage.engine import EngineOptions, is_sqlite, make_engine, upgrade_to_head
from convo.storage.leases import SqlLeaseStore
from convo.storage.schema import conversations, events, user_secrets, user_settings
from convo.storage.server_claim import DatabaseClaim, claim_database
from convo.storage.sql_common import (
    WriteGate,
    completes_when_cancelled,
    reader,
    translate_errors,
)

logger = logging.getLogger(__name__)


class SqlConversationStore:
    def __init__(self, engine: AsyncEngine, gate: WriteGate | None = None) -> None:
        self._engine = reader(engine)
        self._gate = gate or WriteGate(engine)

    @completes_when_cancelled
    async def create(self, metadata: ConversationMetadata) -> None:
        with translate_errors(f"Creating conversation {metadata.conversation_id}"):
            async with self._gate.begin() as conn:
                await conn.execute(
                    insert(conversations).values(**codec.metadata_to_row(metadata), next_event_id=0)
                )

    @completes_when_cancelled
    async def get(self, conversation_id: str) -> ConversationMetadata:
        with translate_errors(f"Loading conversation {conversation_id}"):
            async with self._engine.connect() as conn:
                result = await conn.execute(
                    select(conversations).where(conversations.c.conversation_id == conversation_id)
                )
                row = result.mappings().first()
        if row is None:
            raise RecordNotFound(f"Conversation {conversation_id} not found")
        return codec.metadata_from_row(row)

    async def save(self, metadata: ConversationMetadata) -> None:
        row = codec.metadata_to_row(metadata)
        await self._update(metadata.conversation_id, row, "Saving")

    async def update_fields(
        self, conversation_id: str, *, token: int | None = None, **fields: object
    ) -> None:
        await self._update(conversation_id, codec.update_values(fields), "Updating", token)

    @completes_when_cancelled
    async def _update(
        self, conversation_id: str, values: dict[str, Any], verb: str, token: int | None = None
    ) -> None:
        key = conversations.c.conversation_id
        with translate_errors(f"{verb} conversation {conversation_id}"):
            async with self._gate.begin() as conn:
                if values:
                    stmt = update(conversations).where(key == conversation_id).values(**values)
                    if token is not None:
                        stmt = stmt.where(conversations.c.lease_token == token)
                    result = await conn.execute(stmt.returning(key))
                else:
                    result = await conn.execute(select(key).where(key == conversation_id))
                found = result.first() is not None
                if not found and token is not None:
                    await _refuse_stale(conn, conversation_id)
        if not found:
            raise RecordNotFound(f"Conversation {conversation_id} not found")

    @completes_when_cancelled
    async def delete(self, conversation_id: str) -> bool:
        with translate_errors(f"Deleting conversation {conversation_id}"):
            async with self._gate.begin() as conn:
                # Explicit, so it does not depend on the backend enforcing ON DELETE CASCADE.
                await conn.execute(
                    delete(events).where(events.c.conversation_id == conversation_id)
                )
                result = await conn.execute(
                    delete(conversations)
                    .where(conversations.c.conversation_id == conversation_id)
                    .returning(conversations.c.conversation_id)
                )
                return result.first() is not None

    @completes_when_cancelled
    async def search(
        self,
        user_id: str | None,
        *,
        limit: int = 20,
        page_id: str | None = None,
        selected_repository: str | None = None,
        trigger: ConversationTrigger | None = None,
    ) -> ConversationPage:
        limit = max(1, limit)
        offset = codec.decode_page_id(page_id)
        stmt = select(conversations).where(conversations.c.user_id == codec.user_key(user_id))
        if selected_repository is not None:
            stmt = stmt.where(conversations.c.selected_repository == selected_repository)
        if trigger is not None:
            stmt = stmt.where(conversations.c.trigger == trigger.value)
        stmt = (
            stmt.order_by(conversations.c.created_at.desc(), conversations.c.conversation_id)
            .offset(offset)
            .limit(limit + 1)  # one more tells whether there is a next page
        )
        with translate_errors("Searching conversations"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        results = [codec.metadata_from_row(row) for row in rows[:limit]]
        next_page_id = codec.encode_page_id(offset + limit) if len(rows) > limit else None
        return ConversationPage(results=results, next_page_id=next_page_id)

    @completes_when_cancelled
    async def count(self, user_id: str | None) -> int:
        stmt = select(func.count()).where(conversations.c.user_id == codec.user_key(user_id))
        with translate_errors("Counting conversations"):
            async with self._engine.connect() as conn:
                return int((await conn.execute(stmt)).scalar_one())

    @completes_when_cancelled
    async def find_by_idempotency_key(
        self, user_id: str | None, idempotency_key: str
    ) -> ConversationMetadata | None:
        stmt = select(conversations).where(
            conversations.c.user_id == codec.user_key(user_id),
            conversations.c.idempotency_key == idempotency_key,
        )
        with translate_errors("Finding a conversation by its idempotency key"):
            async with self._engine.connect() as conn:
                row = (await conn.execute(stmt)).mappings().first()
        return None if row is None else codec.metadata_from_row(row)

    @completes_when_cancelled
    async def list_desired_running(self) -> list[ConversationMetadata]:
        stmt = (
            select(conversations)
            .where(conversations.c.desired_running.is_(True))
            .order_by(conversations.c.created_at, conversations.c.conversation_id)
        )
        with translate_errors("Listing running conversations"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        return [codec.metadata_from_row(row) for row in rows]


class SqlEventStore:
    """Ids come from the conversation row's ``next_event_id`` counter, moved in the same
    transaction as the insert: gap-free, and unique because the UPDATE locks the row.

    On SQLite, writers queue in-process on the storage's WriteGate.
    """

    def __init__(self, engine: AsyncEngine, gate: WriteGate | None = None) -> None:
        self._engine = reader(engine)
        self._gate = gate or WriteGate(engine)

    @completes_when_cancelled
    async def append(
        self, conversation_id: str, event: Event, *, token: int | None = None
    ) -> Event:
        with translate_errors(f"Appending an event to conversation {conversation_id}"):
            async with self._gate.begin() as conn:
                event_id = await self._claim_id(
                    conn, conversation_id, codec.agent_state_of(event), token
                )
                stored = event.stored(event_id, event.timestamp or now_iso())
                await conn.execute(
                    insert(events).values(
                        conversation_id=conversation_id,
                        id=event_id,
                        timestamp=stored.timestamp,
                        payload=stored.to_wire(),
                    )
                )
        return stored

    @staticmethod
    async def _claim_id(
        conn: AsyncConnection, conversation_id: str, agent_state: str | None, token: int | None
    ) -> int:
        """The event's id; an agent state change also moves the row's ``agent_state``.
        With a lease ``token``, only while it is the current one: the same UPDATE."""
        counter = conversations.c.next_event_id
        values: dict[str, Any] = {"next_event_id": counter + 1}
        if agent_state is not None:
            values["agent_state"] = agent_state
        stmt = update(conversations).where(conversations.c.conversation_id == conversation_id)
        if token is not None:
            stmt = stmt.where(conversations.c.lease_token == token)
        result = await conn.execute(stmt.values(**values).returning(counter))
        new_value = result.scalar_one_or_none()
        if new_value is None:
            if token is not None:
                await _refuse_stale(conn, conversation_id)
            raise RecordNotFound(f"Conversation {conversation_id} not found")
        return int(new_value) - 1

    @completes_when_cancelled
    async def list(
        self,
        conversation_id: str,
        *,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[Event]:
        stmt = select(events.c.id, events.c.payload).where(
            events.c.conversation_id == conversation_id, events.c.id >= start_id
        )
        if end_id is not None:
            stmt = stmt.where(events.c.id <= end_id)
        stmt = stmt.order_by(events.c.id.desc() if reverse else events.c.id)
        if limit is not None:
            stmt = stmt.limit(max(0, limit))
        with translate_errors(f"Listing events of conversation {conversation_id}"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [Event.from_wire({**row.payload, "id": row.id}) for row in rows]

    @completes_when_cancelled
    async def last_id(self, conversation_id: str) -> int:
        stmt = select(func.max(events.c.id)).where(events.c.conversation_id == conversation_id)
        with translate_errors(f"Reading the last event id of conversation {conversation_id}"):
            async with self._engine.connect() as conn:
                value = (await conn.execute(stmt)).scalar_one_or_none()
        return -1 if value is None else int(value)


SEALED_SETTINGS = ("llm_api_key", "search_api_key")
SEALED_EXTRA = "mcp_config"  # the MCP servers' API keys and environment values


def _extra_sealed(data: Mapping[str, Any], change: Callable[[Any], Any]) -> dict[str, Any]:
    """``data`` with its ``extra`` MCP servers passed through ``change``."""
    extra = data.get("extra")
    if not isinstance(extra, dict) or not isinstance(extra.get(SEALED_EXTRA), dict):
        return dict(data)
    return {**data, "extra": {**extra, SEALED_EXTRA: change(extra[SEALED_EXTRA])}}


async def _refuse_stale(conn: AsyncConnection, conversation_id: str) -> None:
    """A fenced write matched no row: LeaseLost if the conversation exists (its token has
    moved on), else return (the caller raises RecordNotFound)."""
    key = conversations.c.conversation_id
    if (await conn.execute(select(key).where(key == conversation_id))).first() is not None:
        raise LeaseLost(conversation_id)


class SqlSettingsStore:
    """Secrets, provider tokens, the user's LLM and search API keys and MCP servers are
    stored sealed when a ``Sealer`` is given (``convo.storage.at_rest``), which every server
    does."""

    def __init__(
        self, engine: AsyncEngine, gate: WriteGate | None = None, sealer: Sealer | None = None
    ) -> None:
        self._engine = reader(engine)
        self._gate = gate or WriteGate(engine)
        self._sealer = sealer

    async def load_settings(self, user_id: str | None) -> UserSettings | None:
        data = await self._load(user_settings, user_id)
        if data is None:
            return None
        if self._sealer is not None:
            data = {
                **data,
                **{
                    name: self._sealer.open_text(data[name])
                    for name in SEALED_SETTINGS
                    if data.get(name) is not None
                },
            }
            data = _extra_sealed(data, self._sealer.open)
        return codec.settings_from_json(data)

    async def save_settings(self, user_id: str | None, settings: UserSettings) -> None:
        data = codec.settings_to_json(settings)
        if self._sealer is not None:
            for name in SEALED_SETTINGS:
                if data.get(name) is not None:
                    data[name] = self._sealer.seal_text(data[name])
            data = _extra_sealed(data, self._sealer.seal)
        await self._save(user_settings, user_id, data)

    async def load_secrets(self, user_id: str | None) -> UserSecrets:
        data = await self._load(user_secrets, user_id)
        if data is not None and self._sealer is not None:
            data = self._sealer.open(data)
        return UserSecrets() if data is None else codec.secrets_from_json(data)

    async def save_secrets(self, user_id: str | None, secrets: UserSecrets) -> None:
        data = codec.secrets_to_json(secrets)
        await self._save(
            user_secrets, user_id, self._sealer.seal(data) if self._sealer is not None else data
        )

    async def seal_plaintext(self) -> int:
        """Seal what an older version stored in plain text; returns how many rows changed."""
        if self._sealer is None:
            return 0
        sealed = 0
        with translate_errors("Listing stored secrets"):
            async with self._engine.connect() as conn:
                secret_rows = (
                    await conn.execute(select(user_secrets.c.user_id, user_secrets.c.data))
                ).all()
                settings_rows = (
                    await conn.execute(select(user_settings.c.user_id, user_settings.c.data))
                ).all()
        for user_key, data in secret_rows:
            if not is_sealed(data):
                await self._save(user_secrets, user_key, self._sealer.seal(data))
                sealed += 1
        for user_key, data in settings_rows:
            new = dict(data)
            key = data.get("llm_api_key")
            if isinstance(key, str):
                new["llm_api_key"] = self._sealer.seal_text(key)
            extra = data.get("extra")
            servers = extra.get(SEALED_EXTRA) if isinstance(extra, dict) else None
            if isinstance(servers, dict) and not is_sealed(servers):
                new = _extra_sealed(new, self._sealer.seal)
            if new != data:
                await self._save(user_settings, user_key, new)
                sealed += 1
        if sealed and is_sqlite(self._engine):  # the plain rows' old pages leave the WAL too
            with translate_errors("Checkpointing the database"):
                async with self._gate.begin() as conn:
                    await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return sealed

    @completes_when_cancelled
    async def _load(self, table: Table, user_id: str | None) -> Mapping[str, Any] | None:
        stmt = select(table.c.data).where(table.c.user_id == codec.user_key(user_id))
        with translate_errors(f"Loading {table.name}"):
            async with self._engine.connect() as conn:
                data: Mapping[str, Any] | None = (await conn.execute(stmt)).scalar_one_or_none()
        return data

    @completes_when_cancelled
    async def _save(self, table: Table, user_id: str | None, data: dict[str, Any]) -> None:
        from sqlalchemy.dialects import postgresql, sqlite  # not at start: the upsert's kind

        values = {"user_id": codec.user_key(user_id), "data": data, "updated_at": utcnow()}
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.user_id],
            set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at},
        )
        with translate_errors(f"Saving {table.name}"):
            async with self._gate.begin() as conn:
                await conn.execute(stmt)


class SqlStorage:
    """All stores over one engine. Call ``migrate()`` before first use (it is idempotent)."""

    def __init__(self, engine: AsyncEngine, sealer: Sealer | None = None) -> None:
        self.engine = engine
        self._claim: DatabaseClaim | None = None
        gate = WriteGate(engine)  # one per database: all stores' writers queue together
        self.conversations: ConversationStore = SqlConversationStore(engine, gate)
        self.events: EventStore = SqlEventStore(engine, gate)
        self._settings = SqlSettingsStore(engine, gate, sealer)
        self.settings: SettingsStore = self._settings
        self.leases: LeaseStore = SqlLeaseStore(engine, gate)

    @classmethod
    def from_url(
        cls, url: str, sealer: Sealer | None = None, options: EngineOptions | None = None
    ) -> SqlStorage:
        return cls(make_engine(url, options), sealer)

    async def ping(self) -> None:
        """One trivial query; raises StorageUnavailable when the database does not answer."""
        with translate_errors("Reaching the database"):
            async with reader(self.engine).connect() as conn:
                await conn.execute(select(1))

    async def migrate(self) -> None:
        """Bring the schema up to date, then seal secrets stored in plain text."""
        with translate_errors("Migrating the database"):
            await upgrade_to_head(self.engine)
        sealed = await self._settings.seal_plaintext()
        if sealed:
            logger.info("sealed the secrets of %d stored record(s)", sealed)

    async def claim_single_server(self, holder: str, *, shared: bool = False) -> None:
        """Hold this database for this server until :meth:`aclose`; raises
        :class:`~convo.errors.AnotherServerRunning` when another server holds it."""
        with translate_errors("Claiming the database"):
            self._claim = await claim_database(self.engine, holder, shared)

    async def aclose(self) -> None:
        try:
            if self._claim is not None:
                await self._claim.release()
                self._claim = None
        finally:
            await self.engine.dispose()
