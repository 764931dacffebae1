"""In-memory twins of the SQL stores, for unit tests and demos.

They keep records in the same stored shape as ``sql.py`` (through ``codec``), so callers
see the same normalisation: ``user_id`` None and "" are one user, datetimes come back in
UTC, and returned objects never alias stored ones.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from convo.domain.conversation import (
    ConversationMetadata,
    ConversationTrigger,
    UserSecrets,
    UserSettings,
)
from convo.domain.events import Event, now_iso
from convo.errors import LeaseLost, RecordNotFound, StorageError
from convo.storage import codec
from convo.storage.base import (
    Acquisition,
    ConversationPage,
    ConversationStore,
    EventStore,
    Lease,
    LeaseStore,
    SettingsStore,
)


@dataclass
class _State:
    """What the three stores share: deleting a conversation deletes its events."""

    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases: dict[str, _LeaseRow] = field(default_factory=dict)

    def check_token(self, conversation_id: str, token: int | None) -> None:
        """Refuse a fenced write whose token is not the conversation's current one."""
        if token is None or conversation_id not in self.conversations:
            return
        lease = self.leases.get(conversation_id)
        if (lease.token if lease is not None else 0) != token:
            raise LeaseLost(conversation_id)


@dataclass
class _LeaseRow:
    owner: str | None = None
    token: int = 0
    expires_at: float = 0.0

    def live(self) -> bool:
        return self.owner is not None and self.expires_at > time.time()


def _not_found(conversation_id: str) -> RecordNotFound:
    return RecordNotFound(f"Conversation {conversation_id} not found")


class MemoryConversationStore:
    def __init__(self, state: _State) -> None:
        self._state = state

    async def create(self, metadata: ConversationMetadata) -> None:
        if metadata.conversation_id in self._state.conversations:
            raise StorageError(f"Conversation {metadata.conversation_id} already exists")
        key = metadata.idempotency_key
        if key is not None and self._with_key(metadata.user_id, key) is not None:
            raise StorageError("A conversation with this idempotency key exists")
        self._state.conversations[metadata.conversation_id] = codec.metadata_to_row(metadata)
        self._state.events[metadata.conversation_id] = []

    async def get(self, conversation_id: str) -> ConversationMetadata:
        row = self._state.conversations.get(conversation_id)
        if row is None:
            raise _not_found(conversation_id)
        return codec.metadata_from_row(copy.deepcopy(row))

    async def save(self, metadata: ConversationMetadata) -> None:
        self._row(metadata.conversation_id).update(codec.metadata_to_row(metadata))

    async def update_fields(
        self, conversation_id: str, *, token: int | None = None, **fields: object
    ) -> None:
        values = codec.update_values(fields)
        self._state.check_token(conversation_id, token)
        self._row(conversation_id).update(values)

    def _row(self, conversation_id: str) -> dict[str, Any]:
        row = self._state.conversations.get(conversation_id)
        if row is None:
            raise _not_found(conversation_id)
        return row

    async def delete(self, conversation_id: str) -> bool:
        self._state.events.pop(conversation_id, None)
        self._state.leases.pop(conversation_id, None)
        return self._state.conversations.pop(conversation_id, None) is not None

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
        key = codec.user_key(user_id)
        rows = [
            row
            for row in self._state.conversations.values()
            if row["user_id"] == key
            and (selected_repository is None or row["selected_repository"] == selected_repository)
            and (trigger is None or row["trigger"] == trigger.value)
        ]
        # Newest first, ties by id ascending: sort by id, then stably by time descending.
        rows.sort(key=lambda row: row["conversation_id"])
        rows.sort(key=lambda row: row["created_at"], reverse=True)
        page = rows[offset : offset + limit]
        next_page_id = codec.encode_page_id(offset + limit) if len(rows) > offset + limit else None
        return ConversationPage(
            results=[codec.metadata_from_row(copy.deepcopy(row)) for row in page],
            next_page_id=next_page_id,
        )

    async def count(self, user_id: str | None) -> int:
        key = codec.user_key(user_id)
        return sum(1 for row in self._state.conversations.values() if row["user_id"] == key)

    def _with_key(self, user_id: str | None, idempotency_key: str) -> dict[str, Any] | None:
        user = codec.user_key(user_id)
        for row in self._state.conversations.values():
            if row["user_id"] == user and row["idempotency_key"] == idempotency_key:
                return row
        return None

    async def find_by_idempotency_key(
        self, user_id: str | None, idempotency_key: str
    ) -> ConversationMetadata | None:
        row = self._with_key(user_id, idempotency_key)
        return None if row is None else codec.metadata_from_row(copy.deepcopy(row))

    async def list_desired_running(self) -> list[ConversationMetadata]:
        rows = [row for row in self._state.conversations.values() if row["desired_running"]]
        rows.sort(key=lambda row: (row["created_at"], row["conversation_id"]))
        return [codec.metadata_from_row(copy.deepcopy(row)) for row in rows]


class MemoryEventStore:
    """No await between claiming an id and storing the event, so appends are atomic."""

    def __init__(self, state: _State) -> None:
        self._state = state

    async def append(
        self, conversation_id: str, event: Event, *, token: int | None = None
    ) -> Event:
        if conversation_id not in self._state.conversations:
            raise _not_found(conversation_id)
        self._state.check_token(conversation_id, token)
        log = self._state.events.setdefault(conversation_id, [])
        stored = event.stored(len(log), event.timestamp or now_iso())
        # Keep the wire form, as the SQL store does, so nested dicts are not shared.
        log.append(Event.from_wire(stored.to_wire()))
        if (state := codec.agent_state_of(event)) is not None:
            self._state.conversations[conversation_id]["agent_state"] = state
        return stored

    async def list(
        self,
        conversation_id: str,
        *,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[Event]:
        log = self._state.events.get(conversation_id, [])
        selected = [e for e in log if e.id >= start_id and (end_id is None or e.id <= end_id)]
        if reverse:
            selected.reverse()
        if limit is not None:
            selected = selected[: max(0, limit)]
        return [e.model_copy(deep=True) for e in selected]

    async def last_id(self, conversation_id: str) -> int:
        return len(self._state.events.get(conversation_id, [])) - 1


class MemoryLeaseStore:
    """No await inside an operation, so each is atomic, as the SQL statements are."""

    def __init__(self, state: _State) -> None:
        self._state = state

    def _lease(self, conversation_id: str) -> _LeaseRow:
        if conversation_id not in self._state.conversations:
            raise _not_found(conversation_id)
        return self._state.leases.setdefault(conversation_id, _LeaseRow())

    def _user_leases(self, conversation_id: str) -> list[str]:
        """The other conversations of its user with a live lease, least recently updated
        first."""
        rows = self._state.conversations
        user = rows[conversation_id]["user_id"]
        held = [
            cid
            for cid, lease in self._state.leases.items()
            if cid != conversation_id and lease.live() and rows[cid]["user_id"] == user
        ]
        return sorted(held, key=lambda cid: (rows[cid]["last_updated_at"], cid))

    async def acquire(
        self,
        conversation_id: str,
        owner: str,
        ttl_seconds: float,
        *,
        user_limit: int | None = None,
    ) -> Acquisition:
        lease = self._lease(conversation_id)
        if lease.live() and lease.owner != owner:
            return Acquisition(None, holder=lease.owner)
        if user_limit is not None:
            others = self._user_leases(conversation_id)
            if len(others) >= user_limit:
                return Acquisition(None, over_limit=tuple(others))
        lease.owner, lease.token = owner, lease.token + 1
        lease.expires_at = time.time() + ttl_seconds
        return Acquisition(Lease(conversation_id, owner, lease.token))

    async def renew(self, owner: str, ttl_seconds: float) -> dict[str, int]:
        held = {}
        for conversation_id, lease in self._state.leases.items():
            if lease.owner == owner:
                lease.expires_at = time.time() + ttl_seconds
                held[conversation_id] = lease.token
        return held

    async def release(self, conversation_id: str, token: int) -> None:
        lease = self._state.leases.get(conversation_id)
        if lease is not None and lease.token == token:
            lease.owner, lease.expires_at = None, 0.0

    async def revoke(self, conversation_id: str) -> int:
        lease = self._lease(conversation_id)
        lease.owner, lease.expires_at, lease.token = None, 0.0, lease.token + 1
        return lease.token

    async def holder(self, conversation_id: str) -> str | None:
        return (await self.live_owners([conversation_id])).get(conversation_id)

    async def live_owners(self, conversation_ids: list[str]) -> dict[str, str]:
        owners = {}
        for conversation_id in conversation_ids:
            lease = self._state.leases.get(conversation_id)
            if lease is not None and lease.live() and lease.owner is not None:
                owners[conversation_id] = lease.owner
        return owners

    async def orphaned(self) -> list[ConversationMetadata]:
        rows = self._state.conversations
        wanted = [
            cid
            for cid, row in rows.items()
            if row["desired_running"]
            and not (cid in self._state.leases and self._state.leases[cid].live())
        ]
        wanted.sort(key=lambda cid: (rows[cid]["last_updated_at"], cid))
        return [codec.metadata_from_row(copy.deepcopy(rows[cid])) for cid in wanted]


class MemorySettingsStore:
    def __init__(self, state: _State) -> None:
        self._state = state

    async def load_settings(self, user_id: str | None) -> UserSettings | None:
        data = self._state.settings.get(codec.user_key(user_id))
        return None if data is None else codec.settings_from_json(copy.deepcopy(data))

    async def save_settings(self, user_id: str | None, settings: UserSettings) -> None:
        self._state.settings[codec.user_key(user_id)] = codec.settings_to_json(settings)

    async def load_secrets(self, user_id: str | None) -> UserSecrets:
        data = self._state.secrets.get(codec.user_key(user_id))
        return UserSecrets() if data is None else codec.secrets_from_json(copy.deepcopy(data))

    async def save_secrets(self, user_id: str | None, secrets: UserSecrets) -> None:
        self._state.secrets[codec.user_key(user_id)] = codec.secrets_to_json(secrets)


class MemoryStorage:
    """All stores in memory; ``migrate()`` and ``aclose()`` do nothing."""

    def __init__(self) -> None:
        state = _State()
        self.conversations: ConversationStore = MemoryConversationStore(state)
        self.events: EventStore = MemoryEventStore(state)
        self.settings: SettingsStore = MemorySettingsStore(state)
        self.leases: LeaseStore = MemoryLeaseStore(state)

    async def claim_single_server(self, holder: str, *, shared: bool = False) -> None:  # noqa: ARG002
        return None  # nothing outlives this process, so nobody else can hold it

    async def migrate(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
