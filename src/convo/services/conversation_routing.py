"""Users' commands reaching a conversation's loop, on this node or on the node that owns it.

Stop, delete and a user's event act on the loop of this process when it runs here. In
cluster mode a conversation may run on another node (it holds the lease): the command goes
to that node over the ``NodeChannel`` and is carried out there, by the same code. When that
node does not answer (it is dead or frozen), the command is carried out on storage instead:
the lease is revoked (a frozen owner's writes are refused from then on, and its lease keeper
stops its loop when it wakes), then the stop is stored; a user's event is stored here and
found in the log by whichever node resumes the conversation.

The per-user limit of running conversations counts every node's leases (the acquire refuses
past it); a start over it first stops the user's least recently updated conversations,
wherever they run, with an event saying why.

This node answers the same requests from the others (``handle_request``), and stops a loop
at once when its lease keeper finds its lease lost (``lease_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from typing import Any

from convo.cluster.channel import NodeChannel
from convo.config import Settings
from convo.domain.conversation import (
    AgentState,
    ConversationMetadata,
    ConversationStatus,
    ConversationTrigger,
    ProviderType,
)
from convo.domain.events import (
    ActionType,
    Event,
    EventSource,
    agent_state_changed,
    error_observation,
    mask_text,
)
from convo.errors import (
    ConversationError,
    NodeRequestFailed,
    NodeUnreachable,
    RecordNotFound,
    UnsupportedUserAction,
)
from convo.services.action_journal import ActionJournal
from convo.services.conversation_records import CreatedConversation, check_id
from convo.services.conversation_stops import TOO_MANY, StoppableConversations
from convo.services.event_log import EventLog, status_update
from convo.services.ownership import Ownership
from convo.services.stopping import StopResult, cancel_and_wait
from convo.services.user_events import (
    BROWSE_ACTIONS,
    USER_ACTIONS,
    browse_answer,
    parse_user_event,
    under_confirmation,
)
from convo.storage.base import ConversationPage, Storage

logger = logging.getLogger(__name__)

# how much longer than the owner's own stop a request for it may take
_CHANNEL_MARGIN_SECONDS = 5.0


class NotRunningHere(ConversationError):
    """A request reached a node that does not run the conversation (any more)."""


class RoutedConversations(StoppableConversations):
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        log: EventLog,
        ownership: Ownership,
        channel: NodeChannel | None,
    ) -> None:
        super().__init__(settings, storage, log)
        self.ownership = ownership
        self._channel = channel
        self.journal = ActionJournal(settings.resolved_data_dir() / "results")
        self._lease_stops: set[asyncio.Task[bool]] = set()
        self._over_limit_since: dict[str, float] = {}  # takeovers refused for the limit

    async def start(
        self,
        conversation_id: str,
        user_id: str | None,
        providers_set: list[ProviderType] | None = None,
        created: CreatedConversation | None = None,
    ) -> ConversationStatus:
        raise NotImplementedError  # the ConversationManager's

    # --- where it runs ---------------------------------------------------------------------
    def status(self, conversation_id: str) -> ConversationStatus:
        """Its loop's status here; RUNNING when another node runs it (as last looked up,
        by ``get_metadata`` or ``search``)."""
        running = self._running.get(conversation_id)
        if running is not None:
            return running.status
        if self.ownership.owned_elsewhere(conversation_id):
            return ConversationStatus.RUNNING
        return ConversationStatus.STOPPED

    async def _remote_owner(self, conversation_id: str) -> str | None:
        """The other node running it, when one does (cluster mode)."""
        if not self.ownership.clustered or conversation_id in self._running:
            return None
        owner = await self.ownership.owner(conversation_id)
        return owner if owner != self.ownership.node_id else None

    async def _request(
        self,
        owner: str,
        kind: str,
        body: dict[str, Any],
        timeout: float,  # noqa: ASYNC109 (the owner's deadline, passed on to the channel)
    ) -> dict[str, Any] | None:
        """The owner's reply; None when it did not answer (gone or frozen)."""
        if self._channel is None:
            return None
        try:
            return await self._channel.request(owner, kind, body, timeout=timeout)
        except NodeUnreachable as exc:
            logger.warning("%s; acting on storage instead", exc)
            return None

    async def get_metadata(self, conversation_id: str) -> ConversationMetadata:
        metadata = await super().get_metadata(conversation_id)
        if self.ownership.clustered and conversation_id not in self._running:
            await self.ownership.refresh([conversation_id])
        return metadata

    async def search(
        self,
        user_id: str | None,
        *,
        limit: int = 20,
        page_id: str | None = None,
        selected_repository: str | None = None,
        trigger: ConversationTrigger | None = None,
    ) -> ConversationPage:
        page = await super().search(
            user_id,
            limit=limit,
            page_id=page_id,
            selected_repository=selected_repository,
            trigger=trigger,
        )
        if self.ownership.clustered:
            ids = [m.conversation_id for m in page.results]
            await self.ownership.refresh([cid for cid in ids if cid not in self._running])
        return page

    async def wanted_running(self) -> list[ConversationMetadata]:
        """What should run and no node runs (every node's supervisor takes those over)."""
        orphaned = await self.ownership.orphaned()
        return orphaned if orphaned is not None else await super().wanted_running()

    # --- stop and delete -------------------------------------------------------------------
    async def stop(self, conversation_id: str) -> StopResult:
        """Stop the loop, here or on its owner, and say whether it has ended."""
        check_id(conversation_id)
        owner = await self._remote_owner(conversation_id)
        if owner is None:
            return await super().stop(conversation_id)
        wait = self._settings.stop_timeout_seconds
        reply = await self._request(
            owner,
            "stop",
            {"conversation_id": conversation_id, "record": True},
            wait + _CHANNEL_MARGIN_SECONDS,
        )
        if reply is not None:
            await self.ownership.refresh([conversation_id])  # the status answered next
            return StopResult(reply["result"])
        await self._stop_on_storage(conversation_id, record_stop=True)
        return StopResult.STOPPED

    async def _stop_on_storage(self, conversation_id: str, *, record_stop: bool) -> None:
        """Its owner does not answer: nothing may resume it, its lease is revoked (the owner
        writes nothing more), and a user's stop is stored as an event under the new token."""
        with contextlib.suppress(RecordNotFound):
            await self._storage.conversations.update_fields(conversation_id, desired_running=False)
            token = await self.ownership.revoke(conversation_id)
            if record_stop:
                await self._log.append(
                    conversation_id, agent_state_changed(AgentState.STOPPED), token=token
                )

    async def delete(self, conversation_id: str) -> bool:
        check_id(conversation_id)
        with contextlib.suppress(RecordNotFound):  # nothing may resume it while it goes
            await self._storage.conversations.update_fields(conversation_id, desired_running=False)
        owner = await self._remote_owner(conversation_id)
        wait = self._settings.stop_timeout_seconds
        if owner is not None:
            body = {"conversation_id": conversation_id, "record": False}
            if await self._request(owner, "stop", body, wait + _CHANNEL_MARGIN_SECONDS) is None:
                await self._stop_on_storage(conversation_id, record_stop=False)
        await self._stop(conversation_id, record_stop=False, wait_seconds=wait)
        deleted = await self._storage.conversations.delete(conversation_id)
        workspace = self.workspace_path(conversation_id)
        await asyncio.to_thread(shutil.rmtree, workspace, True)
        self.journal.forget(conversation_id)
        self.take_replay(conversation_id)
        return deleted

    # --- a user's events -------------------------------------------------------------------
    async def send_user_event(self, conversation_id: str, data: dict[str, Any]) -> Event:
        """A user event from a client: stored, then handed to the loop (started if needed),
        on the node that runs it."""
        metadata = await self.get_metadata(conversation_id)
        owner = await self._remote_owner(conversation_id)
        if owner is not None:
            body = {"conversation_id": conversation_id, "data": data}
            try:
                reply = await self._request(owner, "user_event", body, 10.0)
            except NodeRequestFailed as exc:
                if exc.error_type == UnsupportedUserAction.__name__:
                    raise UnsupportedUserAction(str(exc)) from None
                if exc.error_type != NotRunningHere.__name__:
                    raise
                reply = {}  # it ended meanwhile: as for a conversation nobody runs
            if reply:
                return Event.from_wire(reply["event"])
            if reply is None:
                # the owner does not answer (dead, frozen, or Redis is down): its loop would
                # never see the event, so it is fenced off; the event is stored here and the
                # node that resumes the conversation (this one, for a message) finds it
                with contextlib.suppress(RecordNotFound):
                    await self.ownership.revoke(conversation_id)
        return await self._send_here(metadata, data)

    async def _send_here(self, metadata: ConversationMetadata, data: dict[str, Any]) -> Event:
        conversation_id = metadata.conversation_id
        event = parse_user_event(data)
        running = self._running.get(conversation_id)
        if event.action in USER_ACTIONS:  # carried out by the loop: it must be there
            if running is None:
                raise UnsupportedUserAction(
                    f"The conversation is not running: start it before sending {event.action!r}"
                )
            event = under_confirmation(event, running.config.confirmation_mode)
        secrets = (
            running.config.secret_values()
            if running is not None
            else await self._stored_secret_values(metadata.user_id)
        )
        if event.action == ActionType.MESSAGE:
            await self._maybe_set_title(
                conversation_id, mask_text(event.message, secrets), metadata
            )
        await self._stopped(conversation_id)  # the message then comes after the STOPPED event
        running = self._running.get(conversation_id)
        stored = await self._log.append(conversation_id, event, secrets)
        if event.action in BROWSE_ACTIONS:  # no browser here: answered at once, loop or not
            await self._log.append(conversation_id, browse_answer(stored), secrets)
            return stored
        if running is not None:
            running.touch()
            running.inbox.put_nowait(stored)
        elif event.action == ActionType.MESSAGE:
            await self.start(conversation_id, metadata.user_id)
        return stored

    # --- the limit across nodes ------------------------------------------------------------
    async def _evict_anywhere(self, conversation_id: str) -> None:
        """Stop it as over the limit: here, on its owner, or on storage if that is gone."""
        if conversation_id in self._running:
            await self._evict(conversation_id)
            return
        owner = await self._remote_owner(conversation_id)
        wait = self._settings.stop_timeout_seconds + _CHANNEL_MARGIN_SECONDS
        if owner is not None:
            body = {"conversation_id": conversation_id}
            if await self._request(owner, "evict", body, wait) is not None:
                return
        message = self._too_many_message()
        with contextlib.suppress(RecordNotFound):
            await self._storage.conversations.update_fields(conversation_id, desired_running=False)
            token = await self.ownership.revoke(conversation_id)
            await self._log.append(
                conversation_id,
                error_observation(message, error_id=TOO_MANY, source=EventSource.ENVIRONMENT),
                token=token,
            )
            await self._log.publish_status(
                conversation_id, status_update("error", TOO_MANY, message)
            )

    async def _refuse_over_limit(self, conversation_id: str) -> None:
        """A conversation to take over while its user runs as many as allowed elsewhere:
        refused once it has been so for a lease time. Before that, the node that creates or
        starts it may be stopping others to make room (its lease comes after), and a refusal
        now would stop it under that node, its first message never answered."""
        now = time.monotonic()
        grace = self._settings.lease_seconds
        for stale in [c for c, t in self._over_limit_since.items() if now - t > 3 * grace]:
            del self._over_limit_since[stale]  # started elsewhere since, or gone
        if now - self._over_limit_since.setdefault(conversation_id, now) < grace:
            return  # the next round looks again
        del self._over_limit_since[conversation_id]
        message = self._too_many_message()
        await self.abandon(
            conversation_id,
            [
                error_observation(message, error_id=TOO_MANY, source=EventSource.ENVIRONMENT),
                agent_state_changed(AgentState.STOPPED, message),
            ],
        )

    # --- requests from other nodes, and leases lost ----------------------------------------
    async def handle_request(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Carry out another node's request for a conversation this node runs."""
        conversation_id = str(body["conversation_id"])
        check_id(conversation_id)
        wait = self._settings.stop_timeout_seconds
        if kind == "stop":
            record = bool(body.get("record", True))
            result = await self._stop(conversation_id, record_stop=record, wait_seconds=wait)
            if result is StopResult.NOT_RUNNING and record:
                await self._stop_on_storage(conversation_id, record_stop=False)
            return {"result": result.value}
        if kind == "evict":
            await self._evict(conversation_id)
            return {}
        if kind == "user_event":
            if conversation_id not in self._running:
                raise NotRunningHere(f"Conversation {conversation_id} does not run here")
            metadata = await self._storage.conversations.get(conversation_id)
            stored = await self._send_here(metadata, dict(body["data"]))
            return {"event": stored.to_wire()}
        raise ConversationError(f"Unknown request {kind!r}")

    def lease_lost(self, conversation_id: str) -> None:
        """Another node took it over (or revoked it): end its loop now, writing nothing."""
        running = self._running.get(conversation_id)
        if running is None or running.task is None:
            return
        running.lease_lost = True
        task = asyncio.create_task(
            cancel_and_wait(running, self._settings.stop_timeout_seconds),
            name=f"conversation:{conversation_id}:lease-lost",
        )
        self._lease_stops.add(task)
        task.add_done_callback(self._lease_stops.discard)
