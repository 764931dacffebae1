"""SQL implementations of the storage protocols over one SQLAlchemy async engine.

Every SQLAlchemy or driver error is translated into StorageError here.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convo.domain.conversation import (
    ConversationMetadata,
    ConversationTrigger,
    UserSecrets,
    UserSettings,
    utcnow,
)
from convo.domain.events import Event, now_iso
from convo.errors import RecordNotFound, StorageError, StorageFull, StorageUnavailable
from convo.storage import codec
from convo.storage.at_rest import Sealer, is_sealed
from convo.storage.base import (
    ConversationPage,
    ConversationStore,
    EventStore,
    SettingsStore,
)
from convo.storage.engine import EngineOptions, is_sqlite, make_engine, upgrade_to_head
from convo.storage.schema import conversations, events, user_secrets, user_settings
from convo.storage.server_claim import DatabaseClaim, claim_database

logger = logging.getLogger(__name__)

# PostgreSQL SQLSTATE classes of a database that is away or overloaded, not of a bad request:
# 08 connection exception, 53 insufficient resources, 57 operator intervention (including
# 57014, a statement cancelled by statement_timeout), 40 transaction rollback (deadlock).
_TRANSIENT_SQLSTATES = ("08", "53", "57", "40")
_DISK_FULL_SQLSTATE = "53100"
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error")


def _classify(exc: DBAPIError) -> type[StorageError]:
    """Which StorageError a driver error becomes: full disk, transient, or anything else."""
    orig = exc.orig
    sqlstate = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    text = str(orig).lower()
    if sqlstate == _DISK_FULL_SQLSTATE or "disk is full" in text or "no space left" in text:
        return StorageFull
    if exc.connection_invalidated or sqlstate.startswith(_TRANSIENT_SQLSTATES):
        return StorageUnavailable
    if any(marker in text for marker in _SQLITE_TRANSIENT):
        return StorageUnavailable
    if isinstance(getattr(orig, "__cause__", None), OSError):
        return StorageUnavailable
    return StorageError


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise database and driver errors as StorageError: StorageFull for a full disk,
    StorageUnavailable for a database that cannot be reached or did not answer in time
    (connection refused or lost, a timeout, a full pool), StorageError otherwise.

    The message names the driver's error, not the statement (whose parameters may hold
    secrets; engines are also built with ``hide_parameters``).
    """
    try:
        yield
    except IntegrityError as exc:
        raise StorageError(f"{action}: constraint violated ({exc.orig})") from exc
    except DBAPIError as exc:
        raise _classify(exc)(f"{action} failed: {exc.orig!r}") from exc
    except PoolTimeout as exc:
        raise StorageUnavailable(f"{action} failed: no database connection free") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"{action} failed: {type(exc).__name__}") from exc
    except OSError as exc:  # the database cannot be reached, or did not answer in time
        kind = StorageFull if exc.errno == errno.ENOSPC else StorageUnavailable
        raise kind(f"{action} failed: {exc!r}") from exc


_P = ParamSpec("_P")
_T = TypeVar("_T")


def completes_when_cancelled(
    method: Callable[_P, Coroutine[Any, Any, _T]],
) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """A write (or read), once begun, runs to its end even if the caller is cancelled.

    Cancelling a task in the middle of a transaction would leave it open on its connection
    (on SQLite, holding the write lock until the busy timeout fails every other writer). The
    caller still sees its CancelledError; the write commits or rolls back in the background.
    Reads are shielded too: a read cancelled mid-way (a loop stopped by a delete while it
    loads its history) left its aiosqlite connection unreturned, for the garbage collector.
    """

    @wraps(method)
    async def shielded(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await asyncio.shield(method(*args, **kwargs))

    return shielded


class WriteGate:
    """Where write transactions begin.

    SQLite takes one writer at a time; writers in this process queue on an asyncio lock
    instead of in SQLite's busy handler, which fails them after its timeout under load.
    PostgreSQL takes concurrent writers and gets no lock.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock() if is_sqlite(engine) else None

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        if self._lock is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._lock, self._engine.begin() as conn:
            yield conn


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The engine for reads: autocommit, so that no connection ever sits idle in a
    transaction between a read and its return to the pool."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


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

    async def update_fields(self, conversation_id: str, **fields: object) -> None:
        await self._update(conversation_id, codec.update_values(fields), "Updating")

    @completes_when_cancelled
    async def _update(self, conversation_id: str, values: dict[str, Any], verb: str) -> None:
        key = conversations.c.conversation_id
        with translate_errors(f"{verb} conversation {conversation_id}"):
            async with self._gate.begin() as conn:
                if values:
                    stmt = update(conversations).where(key == conversation_id).values(**values)
                    result = await conn.execute(stmt.returning(key))
                else:
                    result = await conn.execute(select(key).where(key == conversation_id))
                found = result.first() is not None
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
    async def append(self, conversation_id: str, event: Event) -> Event:
        with translate_errors(f"Appending an event to conversation {conversation_id}"):
            async with self._gate.begin() as conn:
                event_id = await self._claim_id(conn, conversation_id, codec.agent_state_of(event))
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
        conn: AsyncConnection, conversation_id: str, agent_state: str | None
    ) -> int:
        """The event's id; an agent state change also moves the row's ``agent_state``."""
        counter = conversations.c.next_event_id
        values: dict[str, Any] = {"next_event_id": counter + 1}
        if agent_state is not None:
            values["agent_state"] = agent_state
        result = await conn.execute(
            update(conversations)
            .where(conversations.c.conversation_id == conversation_id)
            .values(**values)
            .returning(counter)
        )
        new_value = result.scalar_one_or_none()
        if new_value is None:
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


class SqlSettingsStore:
    """Secrets, provider tokens and the user's LLM API key are stored sealed when a
    ``Sealer`` is given (``convo.storage.at_rest``), which every server does."""

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
        return codec.settings_from_json(data)

    async def save_settings(self, user_id: str | None, settings: UserSettings) -> None:
        data = codec.settings_to_json(settings)
        if self._sealer is not None:
            for name in SEALED_SETTINGS:
                if data.get(name) is not None:
                    data[name] = self._sealer.seal_text(data[name])
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
            key = data.get("llm_api_key")
            if isinstance(key, str):
                new = {**data, "llm_api_key": self._sealer.seal_text(key)}
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

    async def claim_single_server(self, holder: str) -> None:
        """Hold this database for this server until :meth:`aclose`; raises
        :class:`~convo.errors.AnotherServerRunning` when another server holds it."""
        with translate_errors("Claiming the database"):
            self._claim = await claim_database(self.engine, holder)

    async def aclose(self) -> None:
        try:
            if self._claim is not None:
                await self._claim.release()
                self._claim = None
        finally:
            await self.engine.dispose()
