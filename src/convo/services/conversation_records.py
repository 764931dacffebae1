"""ConversationRecords: a conversation's stored side, as the API and the manager reach it.

Creating a conversation (with an optional idempotency key: a retried create finds the
conversation the first one made, per user, for ``CONVO_IDEMPOTENCY_KEY_SECONDS``), reading
its metadata and events, following its events (``open_feed``), listing a user's
conversations and renaming one. The ConversationManager adds the running loops on top; the
API goes through these methods, never through the storage or the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from convo.config import Settings
from convo.domain.conversation import (
    ConversationMetadata,
    ConversationTrigger,
    ProviderType,
    default_title,
    utcnow,
)
from convo.domain.events import Event, EventSource, mask_text, message_action
from convo.domain.events.filter import EventFilter
from convo.domain.ids import is_safe_conversation_id, new_conversation_id
from convo.domain.mcp_config import MCPConfig
from convo.errors import (
    ConversationNotFound,
    InvalidConversationId,
    RecordNotFound,
    ServerShuttingDown,
    StorageError,
)
from convo.llm.base import LLMResponse
from convo.runtime.quota import ensure_free_disk
from convo.services.event_log import EventLog, status_update
from convo.services.keyed_lock import KeyedLock
from convo.services.repository_check import check_repository
from convo.services.streams import EventFeed, StreamOptions
from convo.services.user_config import ConversationConfig, resolve_config
from convo.services.user_events import title_from_text
from convo.storage.base import ConversationPage, Storage

logger = logging.getLogger(__name__)

SEARCH_BATCH = 200  # events read from storage at a time by a filtered search


@dataclass(frozen=True)
class NewConversation:
    initial_user_msg: str | None = None
    image_urls: list[str] | None = None
    repository: str | None = None
    selected_branch: str | None = None
    git_provider: ProviderType | None = None
    conversation_instructions: str | None = None
    trigger: ConversationTrigger = ConversationTrigger.GUI
    # model answers replaying a recorded trajectory (services.replay), for its first loop
    replay: list[LLMResponse] = field(default_factory=list)
    # MCP servers for its first loop instead of the user's settings' (as OpenHands does)
    mcp_config: MCPConfig | None = None
    # The caller starts its loop right away: stored as wanted running with the row itself,
    # so that the start has nothing more to write (and a crash in between resumes it).
    start: bool = False


@dataclass(frozen=True)
class CreatedConversation:
    metadata: ConversationMetadata
    # the user's settings as the create read them; None: an earlier create made it
    config: ConversationConfig | None

    @property
    def conversation_id(self) -> str:
        return self.metadata.conversation_id


class ConversationRecords:
    def __init__(self, settings: Settings, storage: Storage, log: EventLog) -> None:
        self._settings = settings
        self._storage = storage
        self._log = log
        self._creates = KeyedLock()  # per user and idempotency key
        self._closing = False  # the server shuts down: create nothing
        self._replays: dict[str, list[LLMResponse]] = {}  # conversation id -> for its loop

    @property
    def event_log(self) -> EventLog:
        """For tests and tools; the API goes through the methods below."""
        return self._log

    @property
    def storage(self) -> Storage:
        """For tests and tools; the API goes through the methods below."""
        return self._storage

    def workspace_path(self, conversation_id: str) -> Path:
        return self._settings.resolved_workspaces_dir() / conversation_id

    async def get_metadata(self, conversation_id: str) -> ConversationMetadata:
        check_id(conversation_id)
        try:
            return await self._storage.conversations.get(conversation_id)
        except RecordNotFound:
            raise ConversationNotFound(conversation_id) from None

    async def events(
        self,
        conversation_id: str,
        *,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
        keep: EventFilter | None = None,
    ) -> list[Event]:
        """Stored events with start_id <= id <= end_id (descending when ``reverse``), only
        those ``keep`` includes (``limit`` counts those); ConversationNotFound for an
        unknown conversation."""
        await self.get_metadata(conversation_id)
        if keep is None:
            return await self._storage.events.list(
                conversation_id, start_id=start_id, end_id=end_id, reverse=reverse, limit=limit
            )
        return await self._search(conversation_id, start_id, end_id, reverse, limit, keep)

    async def _search(
        self,
        conversation_id: str,
        start_id: int,
        end_id: int | None,
        reverse: bool,
        limit: int | None,
        keep: EventFilter,
    ) -> list[Event]:
        """The events ``keep`` includes, read from storage a batch at a time."""
        found: list[Event] = []
        low, high = start_id, end_id
        while limit is None or len(found) < limit:
            batch = await self._storage.events.list(
                conversation_id, start_id=low, end_id=high, reverse=reverse, limit=SEARCH_BATCH
            )
            found.extend(event for event in batch if keep.include(event))
            if len(batch) < SEARCH_BATCH:
                break
            if reverse:
                high = batch[-1].id - 1
            else:
                low = batch[-1].id + 1
        return found if limit is None else found[:limit]

    def open_feed(self, conversation_id: str, after_id: int, options: StreamOptions) -> EventFeed:
        """A feed of the conversation's events after ``after_id``, then live ones; already
        subscribed (so counted in ``num_connections``). The caller closes it."""
        feed = EventFeed(
            self._storage.events,
            self._log.bus,
            conversation_id,
            after_id,
            page_size=options.page_size,
            max_queue=options.max_queue,
        )
        feed.open()
        return feed

    async def search(
        self,
        user_id: str | None,
        *,
        limit: int = 20,
        page_id: str | None = None,
        selected_repository: str | None = None,
        trigger: ConversationTrigger | None = None,
    ) -> ConversationPage:
        """The user's conversations, newest first."""
        return await self._storage.conversations.search(
            user_id,
            limit=limit,
            page_id=page_id,
            selected_repository=selected_repository,
            trigger=trigger,
        )

    async def llm_configured(self, user_id: str | None) -> bool:
        """Whether a model is set, on the server or in the user's settings."""
        if self._settings.llm_model:
            return True
        stored = await self._storage.settings.load_settings(user_id)
        return bool(stored and stored.llm_model)

    async def check_repository(
        self, user_id: str | None, repository: str, provider: ProviderType | None
    ) -> ProviderType | None:
        """``convo.services.repository_check``: the provider for a new conversation's
        repository; RepositoryNotAccessible when its provider says no."""
        config = await self._user_config(user_id)
        return await check_repository(repository, provider, config.provider_tokens, config.env)

    async def create(
        self,
        user_id: str | None,
        request: NewConversation,
        idempotency_key: str | None = None,
    ) -> str:
        """Store a new conversation (and its first message); its id. With an idempotency key
        the user's conversation made with the same key, while kept, is returned instead."""
        created = await self.create_conversation(user_id, request, idempotency_key)
        return created.conversation_id

    async def create_conversation(
        self,
        user_id: str | None,
        request: NewConversation,
        idempotency_key: str | None = None,
    ) -> CreatedConversation:
        """``create``, with what it read on the way (for the start that follows)."""
        if self._closing:
            raise ServerShuttingDown
        await asyncio.to_thread(  # DiskNearlyFull while the data dir's disk is nearly full
            ensure_free_disk, self._settings.resolved_data_dir(), self._settings.min_free_disk_mb
        )
        if idempotency_key is None:
            return await self._create(user_id, request, None)
        async with self._creates.hold(f"{user_id or ''}\n{idempotency_key}"):
            conversations = self._storage.conversations
            existing = await conversations.find_by_idempotency_key(user_id, idempotency_key)
            if existing is not None:
                kept = timedelta(seconds=self._settings.idempotency_key_seconds)
                if utcnow() - existing.created_at < kept:
                    return CreatedConversation(existing, None)
                # expired: the key may make a new conversation
                await conversations.update_fields(existing.conversation_id, idempotency_key=None)
            try:
                return await self._create(user_id, request, idempotency_key)
            except StorageError:  # another server made it meanwhile (the key is unique)
                existing = await conversations.find_by_idempotency_key(user_id, idempotency_key)
                if existing is None:
                    raise
                return CreatedConversation(existing, None)

    async def _create(
        self, user_id: str | None, request: NewConversation, idempotency_key: str | None
    ) -> CreatedConversation:
        conversation_id = new_conversation_id()
        message = request.initial_user_msg
        config = await self._user_config(user_id) if message or request.start else None
        if config is not None and request.mcp_config is not None:
            servers = None if request.mcp_config.empty else request.mcp_config
            config = replace(config, mcp=servers, mcp_error=None)
        secrets = config.secret_values() if config is not None else []
        title = title_from_text(mask_text(message, secrets)) if message else ""
        metadata = ConversationMetadata(
            conversation_id=conversation_id,
            user_id=user_id,
            title=title,
            selected_repository=request.repository,
            selected_branch=request.selected_branch,
            git_provider=request.git_provider,
            trigger=request.trigger,
            conversation_instructions=request.conversation_instructions,
            llm_model=self._settings.llm_model,
            idempotency_key=idempotency_key,
            # in a cluster its start marks it once it holds the lease: marked now, another
            # node's takeover round could start it before its first message is stored
            desired_running=request.start and not self._settings.cluster_mode,
        )
        await self._storage.conversations.create(metadata)
        if request.replay:
            self._replays[conversation_id] = list(request.replay)
        if message:
            try:
                await self._log.append(
                    conversation_id,
                    message_action(message, EventSource.USER, image_urls=request.image_urls),
                    secrets,
                )
            except BaseException:  # a retried create must not find it without its message
                with contextlib.suppress(Exception):
                    await self._storage.conversations.delete(conversation_id)
                raise
        return CreatedConversation(metadata, config)

    def take_replay(self, conversation_id: str) -> list[LLMResponse]:
        """The trajectory its create asked to replay, for its first loop only."""
        return self._replays.pop(conversation_id, [])

    # --- for the supervisor (through the manager) ------------------------------------
    async def wanted_running(self) -> list[ConversationMetadata]:
        return await self._storage.conversations.list_desired_running()

    async def abandon(
        self,
        conversation_id: str,
        events: Sequence[Event],
        status: dict[str, Any] | None = None,
    ) -> None:
        """Store that it should not run (so nothing resumes it), then the events saying why."""
        await self._storage.conversations.update_fields(conversation_id, desired_running=False)
        for event in events:
            await self._log.append(conversation_id, event)
        if status is not None:
            await self._log.publish_status(conversation_id, status)

    async def update_title(self, conversation_id: str, title: str) -> None:
        await self.get_metadata(conversation_id)
        await self._storage.conversations.update_fields(
            conversation_id, title=title, last_updated_at=utcnow()
        )
        await self._log.publish_status(
            conversation_id,
            status_update("info", "", conversation_id, conversation_title=title),
        )

    async def _user_config(
        self, user_id: str | None, providers_set: list[ProviderType] | None = None
    ) -> ConversationConfig:
        """What a loop of the user's gets: the server's settings under the user's own."""
        return resolve_config(
            self._settings,
            await self._storage.settings.load_settings(user_id),
            await self._storage.settings.load_secrets(user_id),
            providers_set,
        )

    async def _stored_secret_values(self, user_id: str | None) -> list[str]:
        """What to mask in an event stored while no loop runs (every stored token)."""
        return (await self._user_config(user_id)).secret_values()

    async def _maybe_set_title(
        self, conversation_id: str, text: str, metadata: ConversationMetadata | None = None
    ) -> None:
        metadata = metadata or await self.get_metadata(conversation_id)
        title = title_from_text(text)
        if metadata.title == default_title(conversation_id) and title:
            await self.update_title(conversation_id, title)


def check_id(conversation_id: str) -> None:
    if not is_safe_conversation_id(conversation_id):
        raise InvalidConversationId(conversation_id)
