"""Storage protocols. SQL implementations live in ``sql.py``; in-memory twins in ``memory.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from convo.domain.conversation import (
    ConversationMetadata,
    ConversationTrigger,
    UserSecrets,
    UserSettings,
)
from convo.domain.events import Event


@dataclass(frozen=True)
class ConversationPage:
    results: list[ConversationMetadata]
    next_page_id: str | None


class ConversationStore(Protocol):
    async def create(self, metadata: ConversationMetadata) -> None:
        """Store a new conversation; raises StorageError if the id exists."""

    async def get(self, conversation_id: str) -> ConversationMetadata:
        """Raises RecordNotFound when missing."""

    async def save(self, metadata: ConversationMetadata) -> None:
        """Overwrite a stored conversation's metadata; raises RecordNotFound when missing."""

    async def delete(self, conversation_id: str) -> bool:
        """Delete the conversation and all its events; False when it did not exist."""

    async def search(
        self,
        user_id: str | None,
        *,
        limit: int = 20,
        page_id: str | None = None,
        selected_repository: str | None = None,
        trigger: ConversationTrigger | None = None,
    ) -> ConversationPage:
        """The user's conversations, newest ``created_at`` first; filters apply before paging."""

    async def list_desired_running(self) -> list[ConversationMetadata]:
        """Conversations whose loop the user wants running (for resume after a restart)."""

    async def update_fields(self, conversation_id: str, **fields: object) -> None:
        """Set a few metadata fields (e.g. ``last_updated_at``, ``accumulated_cost``, token
        counts, ``title``, ``desired_running``) without rewriting the rest of the record.

        Raises RecordNotFound when missing and TypeError for a name that is not a field of
        ConversationMetadata (``conversation_id`` cannot be changed)."""

    async def count(self, user_id: str | None) -> int:
        """How many conversations the user has."""

    async def find_by_idempotency_key(
        self, user_id: str | None, idempotency_key: str
    ) -> ConversationMetadata | None:
        """The user's conversation created with this key, if any. ``create`` refuses a
        second one with the same key (StorageError)."""


class EventStore(Protocol):
    async def append(self, conversation_id: str, event: Event) -> Event:
        """Durably store the event; returns it with its new id (0, 1, 2, ... per conversation)
        and timestamp. Safe under concurrent appends to one conversation."""

    async def list(
        self,
        conversation_id: str,
        *,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[Event]:
        """Events with start_id <= id <= end_id, ascending (descending when reverse)."""

    async def last_id(self, conversation_id: str) -> int:
        """Highest stored id, -1 when there are none."""


class SettingsStore(Protocol):
    async def load_settings(self, user_id: str | None) -> UserSettings | None: ...

    async def save_settings(self, user_id: str | None, settings: UserSettings) -> None: ...

    async def load_secrets(self, user_id: str | None) -> UserSecrets: ...

    async def save_secrets(self, user_id: str | None, secrets: UserSecrets) -> None: ...


class Storage(Protocol):
    """All stores over one backend."""

    conversations: ConversationStore
    events: EventStore
    settings: SettingsStore

    async def claim_single_server(self, holder: str) -> None:
        """Hold the backend for this server until ``aclose``, or raise AnotherServerRunning
        naming the server that holds it (``holder`` is how this one names itself)."""

    async def migrate(self) -> None:
        """Bring the schema up to date (idempotent)."""

    async def ping(self) -> None:
        """Raise StorageError unless the backend answers a trivial query now."""

    async def aclose(self) -> None: ...
