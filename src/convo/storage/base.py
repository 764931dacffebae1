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

    async def update_fields(
        self, conversation_id: str, *, token: int | None = None, **fields: object
    ) -> None:
        """Set a few metadata fields (e.g. ``last_updated_at``, ``accumulated_cost``, token
        counts, ``title``, ``desired_running``) without rewriting the rest of the record.

        ``token``: a loop's write under its lease (cluster mode), refused with LeaseLost,
        atomically, unless it is the conversation's current lease token.

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
    async def append(
        self, conversation_id: str, event: Event, *, token: int | None = None
    ) -> Event:
        """Durably store the event; returns it with its new id (0, 1, 2, ... per conversation)
        and timestamp. Safe under concurrent appends to one conversation.

        ``token``: a loop's append under its lease (cluster mode), refused with LeaseLost,
        in the same transaction, unless it is the conversation's current lease token."""

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


@dataclass(frozen=True)
class Lease:
    """A node's lease on a conversation: its writes carry ``token``."""

    conversation_id: str
    owner: str
    token: int


@dataclass(frozen=True)
class Acquisition:
    """What an acquire got: the lease, or who holds it, or the user's conversations whose
    live leases leave no room under the limit."""

    lease: Lease | None
    holder: str | None = None  # the live owner, when another node holds it
    over_limit: tuple[str, ...] = ()  # least recently updated first


class LeaseStore(Protocol):
    """Conversation leases (cluster mode), with expiries by the database's clock.

    A lease is held by one owner (a node id) until it expires; acquiring it (when free,
    expired or already the caller's) raises its token by one, so a token is never given
    twice and every write of an earlier holder is refused from then on."""

    async def acquire(
        self,
        conversation_id: str,
        owner: str,
        ttl_seconds: float,
        *,
        user_limit: int | None = None,
    ) -> Acquisition:
        """Take the lease unless another owner holds it live, or (``user_limit``) the
        conversation's user already has that many other live leases: one statement, or
        serialised per user, so that owners racing never exceed the limit together.
        Raises RecordNotFound when missing."""

    async def renew(self, owner: str, ttl_seconds: float) -> dict[str, int]:
        """Extend every lease ``owner`` holds (one statement); conversation id -> token of
        each. A lease the owner believed it held and that is missing here is lost."""

    async def release(self, conversation_id: str, token: int) -> None:
        """Free the lease if ``token`` is still current (a loop that ended)."""

    async def revoke(self, conversation_id: str) -> int:
        """End whatever lease is held (its holder's writes are refused from now on); the
        new token, for writes of the caller's own. Raises RecordNotFound when missing."""

    async def holder(self, conversation_id: str) -> str | None:
        """The owner holding a live lease on it, if any."""

    async def live_owners(self, conversation_ids: list[str]) -> dict[str, str]:
        """Conversation id -> owner, for those of ``conversation_ids`` held live."""

    async def orphaned(self) -> list[ConversationMetadata]:
        """Conversations that should run (``desired_running``) and have no live lease,
        least recently updated first: what a takeover resumes."""


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
    leases: LeaseStore

    async def claim_single_server(self, holder: str, *, shared: bool = False) -> None:
        """Hold the backend for this server until ``aclose``, or raise AnotherServerRunning
        naming the server that holds it (``holder`` is how this one names itself).
        ``shared``: a cluster node, which shares it with other nodes but no single server."""

    async def migrate(self) -> None:
        """Bring the schema up to date (idempotent)."""

    async def ping(self) -> None:
        """Raise StorageError unless the backend answers a trivial query now."""

    async def aclose(self) -> None: ...
