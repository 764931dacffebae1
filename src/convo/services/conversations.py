"""ConversationManager: start, stop, evict and talk to conversations in this process.

Start is idempotent and race-free: the check and the registration happen under the
conversation's own lock, so any number of concurrent starts of one conversation yield
exactly one loop, while starts of different conversations never wait for each other. No
lock is held while other loops are stopped (eviction) or a loop's cancelled task is waited
for; stopping is ``conversation_stops.py``'s (a stop says whether the loop really ended,
``StopResult``), reaching a loop on another node ``conversation_routing.py``'s. Every loop
is an owned, named task; a stored event's metadata is noted in memory and written by
``MetadataSync``'s own task, never on the loop's append path.

In cluster mode (``CONVO_REDIS_URL``) a loop starts only under a lease this node acquired in
the database (``ownership.py``), so starts racing on several nodes also yield one loop; its
writes carry the lease's fencing token, and it ends without writing once the lease is lost.

Which conversations should run is stored (``desired_running``): set by a start, cleared by a
user's stop (and by eviction, idle closing or a failed start), and left as it is by a server
shutdown, so that the ``Supervisor`` (``supervisor.py``) resumes them on the next start-up.
``shutdown`` (also ``aclose``) refuses new starts, lets running commands finish within the
grace period, then stops every loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from convo.cluster.base import EventBus
from convo.cluster.channel import NodeChannel
from convo.cluster.node import new_node_id
from convo.cluster.wakeups import LEASE_RELEASED, Wakeups
from convo.config import Settings
from convo.domain.conversation import (
    ConversationMetadata,
    ConversationStatus,
    ProviderType,
)
from convo.domain.events import (
    Event,
)
from convo.errors import (
    ConversationNotFound,
    LeaseLost,
    LLMNotConfigured,
    RecordNotFound,
    ServerShuttingDown,
    StorageError,
    TooManyConversations,
)
from convo.llm.base import LLMClient, LLMClientFactory, LLMConfig
from convo.runtime.base import SandboxFactory
from convo.runtime.quota import ensure_free_disk
from convo.services.conversation_records import (
    CreatedConversation,
)
from convo.services.conversation_records import NewConversation as NewConversation  # re-export
from convo.services.conversation_routing import RoutedConversations
from convo.services.durable_writes import DurableWriter, RetryPolicy
from convo.services.event_log import EventLog
from convo.services.feedback import FeedbackLog
from convo.services.idle_sandboxes import ReleasableSandboxes
from convo.services.loop_storage import LoopStorage
from convo.services.orphans import ProcessRegistry
from convo.services.ownership import LeaseOwnership, Ownership, SoleOwnership
from convo.services.running import LoopDeps, RunningConversation, run_conversation
from convo.services.shutdown import stop_gracefully
from convo.services.storage_health import DiskReserve
from convo.services.supervisor import Supervisor
from convo.services.user_config import ConversationConfig, resolve_llm
from convo.storage.base import Acquisition, Storage

logger = logging.getLogger(__name__)

_MAX_EVICTION_ROUNDS = 3  # a start over the limit stops others this often, then gives up


class ConversationManager(RoutedConversations):
    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        bus: EventBus,
        sandbox_factory: SandboxFactory,
        llm_factory: LLMClientFactory,
        node_id: str | None = None,
        channel: NodeChannel | None = None,
        wakeups: Wakeups | None = None,
    ) -> None:
        """``node_id``: how this process names itself to the others (cluster mode);
        ``channel``: how requests reach the node that owns a conversation; ``wakeups``:
        hints to the others (a lease let go of) and from them."""
        node_id = node_id or new_node_id()
        ownership: Ownership = (
            LeaseOwnership(storage.leases, node_id, settings.lease_seconds)
            if settings.cluster_mode
            else SoleOwnership(node_id)
        )
        super().__init__(settings, storage, EventLog(storage.events, bus), ownership, channel)
        self._starts = 0  # starts between their closing check and their registration
        self._no_starts = asyncio.Event()
        self._no_starts.set()
        self._shutdown_task: asyncio.Task[None] | None = None
        self.processes = ProcessRegistry(settings.resolved_data_dir() / "run")
        self.supervisor = Supervisor(self, settings)
        self._wakeups = wakeups
        # the loops' own way in: a few of their calls at a time, API requests go past them
        self._loop_storage = LoopStorage(storage.events, storage.settings)
        loop_log = EventLog(self._loop_storage.events, bus)
        self.writer = DurableWriter(
            loop_log,
            self.health,
            DiskReserve(settings.resolved_data_dir(), settings.disk_reserve_mb * 2**20),
            RetryPolicy(settings.storage_retry_seconds, settings.storage_retry_max_delay_seconds),
        )
        self.feedback = FeedbackLog(settings.resolved_data_dir() / "feedback")
        self._deps = LoopDeps(
            event_log=loop_log,
            sandbox_factory=ReleasableSandboxes(sandbox_factory, self.processes),
            llm_factory=llm_factory,
            workspace_for=self.workspace_path,
            command_timeout_seconds=settings.command_timeout_seconds,
            max_output_chars=settings.max_output_chars,
            processes=self.processes,
            on_event=self._on_event,
            on_exit=self._on_exit,
            writer=self.writer,
            journal=self.journal,
            llm_config=self._current_llm_config,
        )

    # --- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> ConversationManager:
        """Kill what a killed predecessor left, resume what should run, then supervise."""
        await self.writer.reserve.ensure()
        self.metadata_sync.start()
        self.ownership.start(self.lease_lost)
        if self._channel is not None:
            self._channel.serve(self.handle_request)
        if self._wakeups is not None and self.ownership.clustered:
            self._wakeups.on_wakeup(lambda _kind, _body: self.supervisor.poke())
        await self.supervisor.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.shutdown()

    @property
    def closing(self) -> bool:
        return self._closing

    async def shutdown(self, grace_seconds: float | None = None) -> None:
        """Refuse new starts, let running commands finish (half the grace period at most),
        stop every loop without recording a user stop, flush metadata. Idempotent."""
        if self._shutdown_task is None:
            grace = (
                self._settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
            )
            self._shutdown_task = asyncio.create_task(
                self._shutdown(grace), name="conversations:shutdown"
            )
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self, grace: float) -> None:
        self._closing = True
        await self._no_starts.wait()  # a start in progress registers first, or sees _closing
        await self.supervisor.aclose()

        async def stop(conversation_id: str, wait_seconds: float) -> bool:
            result = await self._stop(conversation_id, record_stop=False, wait_seconds=wait_seconds)
            return result.ended

        await stop_gracefully(list(self._running.values()), stop, grace)
        await self.metadata_sync.aclose()
        await self.ownership.aclose()  # their leases were released as their loops ended

    # --- for the supervisor ------------------------------------------------------------
    async def kill_leftovers(self) -> None:
        await asyncio.to_thread(self.processes.kill_leftovers)

    async def flush_metadata(self) -> None:
        await self.metadata_sync.flush_all()

    # --- commands ----------------------------------------------------------------------
    async def start(
        self,
        conversation_id: str,
        user_id: str | None,
        providers_set: list[ProviderType] | None = None,
        created: CreatedConversation | None = None,
    ) -> ConversationStatus:
        """Start the conversation's loop unless it runs; returns its status. ``created``:
        what its create read just now, not to be read again."""
        running = self._running.get(conversation_id)
        if (
            running is not None
            and running.user_id == user_id
            and conversation_id not in self._stopping
        ):
            return running.status  # the common case, without a database read
        config = None
        if created is not None and created.config is not None and not providers_set:
            metadata, config = created.metadata, created.config
        else:
            metadata = await self.get_metadata(conversation_id)
        if metadata.user_id != user_id:
            raise ConversationNotFound(conversation_id)  # not the caller's conversation
        if self.ownership.owned_elsewhere(conversation_id):  # as get_metadata just saw
            return ConversationStatus.RUNNING
        await self._ensure_free_disk()
        self._unstored_stops.pop(conversation_id, None)  # a start overrides an unstored stop
        status = await self._start_loop(conversation_id, providers_set, metadata, config)
        assert status is not None  # only a resume declines
        return status

    async def _ensure_free_disk(self) -> None:
        """Raise DiskNearlyFull while the data dir's disk is nearly full."""
        await asyncio.to_thread(
            ensure_free_disk, self._settings.resolved_data_dir(), self._settings.min_free_disk_mb
        )

    async def resume(self, conversation_id: str) -> ConversationStatus | None:
        """Start a loop the store says should run (after a restart); None when it no longer
        should (stopped or deleted meanwhile)."""
        return await self._start_loop(conversation_id, None, None)

    async def _start_loop(
        self,
        conversation_id: str,
        providers_set: list[ProviderType] | None,
        metadata: ConversationMetadata | None,
        config: ConversationConfig | None = None,
    ) -> ConversationStatus | None:
        """Register and launch the loop; ``metadata`` None: resume, if still wanted.

        A loop being stopped is waited for first, so that the new loop starts after the old
        one's STOPPED event instead of being reported as running while it goes away. Only
        this conversation's lock is held, and only until its loop is registered; loops over
        the user's limit are stopped afterwards, under their own locks. A start reads the
        user's settings before taking the lock; a resume reads them under it, after it has
        read (under the lock) that the conversation should still run.

        In cluster mode the loop starts only under a lease this node acquired: when another
        node holds it, nothing starts (a start answers RUNNING, a resume None); when the
        user runs as many conversations as allowed across the nodes, a start first stops
        the least recently updated of them (wherever they run) and tries again."""
        providers_set = providers_set or None
        resuming = metadata is None
        if config is None and metadata is not None:
            config = await self._config(metadata, providers_set)
        evictions = 0
        while True:
            await self._stopped(conversation_id)
            async with self._locks.hold(conversation_id):
                if conversation_id in self._stopping:
                    continue  # another stop began meanwhile: wait for it too
                running = self._running.get(conversation_id)
                if running is not None:
                    return running.status
                if self._closing:
                    raise ServerShuttingDown
                self._begin_start()
                try:
                    if metadata is None:  # read now: a user's stop may just have landed
                        metadata = await self._still_wanted(conversation_id)
                        if metadata is None:
                            return None
                        providers_set = metadata.providers_set or None  # the tokens it had
                    launched = await self._launch(metadata, providers_set, config)
                finally:
                    self._end_start()
            if isinstance(launched, RunningConversation):
                break
            if launched.holder is not None or resuming or evictions >= _MAX_EVICTION_ROUNDS:
                return await self._not_launched(conversation_id, launched, resuming)
            evictions += 1
            excess = len(launched.over_limit) - self._settings.max_concurrent_conversations + 1
            for victim in launched.over_limit[: max(1, excess)]:
                await self._evict_anywhere(victim)
        if not self.ownership.clustered:  # the acquire counted them across the cluster
            await self._evict_over_limit(launched)
        return launched.status

    async def _still_wanted(self, conversation_id: str) -> ConversationMetadata | None:
        """Its metadata if it should still run (for a resume), else None."""
        try:
            metadata = await self._storage.conversations.get(conversation_id)
        except RecordNotFound:
            return None
        if not metadata.desired_running:
            return None
        logger.info("resuming conversation %s", conversation_id)
        return metadata

    async def _not_launched(
        self, conversation_id: str, acquisition: Acquisition, resuming: bool
    ) -> ConversationStatus | None:
        """What a start or resume answers when it could not acquire the lease."""
        if acquisition.holder is not None:  # another node runs it
            return None if resuming else ConversationStatus.RUNNING
        if resuming:  # its user runs as many as allowed on other nodes
            await self._refuse_over_limit(conversation_id)
            return None
        raise TooManyConversations(self._settings.max_concurrent_conversations)

    def _begin_start(self) -> None:
        self._starts += 1
        self._no_starts.clear()

    def _end_start(self) -> None:
        self._starts -= 1
        if not self._starts:
            self._no_starts.set()

    async def _config(
        self, metadata: ConversationMetadata, providers_set: list[ProviderType] | None
    ) -> ConversationConfig:
        return await self._user_config(metadata.user_id, providers_set)

    async def _launch(
        self,
        metadata: ConversationMetadata,
        providers_set: list[ProviderType] | None,
        config: ConversationConfig | None,
    ) -> RunningConversation | Acquisition:
        """Acquire its lease, then create and register the loop's task (the conversation's
        lock is held); what the acquire got instead when it failed."""
        conversation_id = metadata.conversation_id
        clustered = self.ownership.clustered
        limit = self._settings.max_concurrent_conversations if clustered else None
        acquired = await self.ownership.acquire(conversation_id, limit)
        if acquired.lease is None:
            return acquired
        token = self.ownership.token(conversation_id)
        try:
            if config is None:
                config = await self._config(metadata, providers_set)
            if not metadata.desired_running or metadata.providers_set != providers_set:
                # stored before the loop exists: a crash from now on resumes it, with these
                # tokens
                await self._storage.conversations.update_fields(
                    conversation_id, token=token, desired_running=True, providers_set=providers_set
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await self.ownership.release(conversation_id)
            raise
        self.metadata_sync.own(conversation_id, token)
        running = RunningConversation(
            metadata, config, replay=self.take_replay(conversation_id), token=token
        )
        self._running[conversation_id] = running
        running.task = asyncio.create_task(
            run_conversation(running, self._deps), name=f"conversation:{conversation_id}"
        )
        # also when cancelled before its first step, when its body's cleanup never runs
        running.task.add_done_callback(lambda _task: self._discard(running))
        return running

    async def llm_client(self, user_id: str | None) -> LLMClient:
        """A client for the user's model, for a call outside any loop (remember-prompt)."""
        config = (await self._user_config(user_id)).llm
        if config is None:
            raise LLMNotConfigured("No LLM is configured: set CONVO_LLM_MODEL or save settings")
        return self._deps.llm_factory(config)

    async def _current_llm_config(self, running: RunningConversation) -> LLMConfig | None:
        """The user's LLM settings as saved now: a change reaches the next LLM call."""
        user = await self._loop_storage.load_settings(running.user_id)
        return resolve_llm(self._settings, user)

    async def _on_event(self, running: RunningConversation, event: Event) -> None:
        self.metadata_sync.note(running.conversation_id, event)  # no I/O on the append path

    def _discard(self, running: RunningConversation) -> None:
        if self._running.get(running.conversation_id) is running:
            del self._running[running.conversation_id]

    async def _on_exit(self, running: RunningConversation, failure: BaseException | None) -> None:
        """Runs as the loop's task ends, however it ends: the status is STOPPED at once.

        A loop that failed is not resumed, unless storage failed it: that one should run
        again once storage is back (the stored state could not be written anyway). A loop
        whose lease another node took writes nothing; any other frees its lease."""
        self._discard(running)
        conversation_id = running.conversation_id
        if running.lease_lost or isinstance(failure, LeaseLost):
            self.ownership.forget(conversation_id)
            self.metadata_sync.forget(conversation_id)
            return
        failed = failure is not None and not isinstance(failure, StorageError)
        fields: dict[str, object] = {"desired_running": False} if failed else {}
        try:
            await self.metadata_sync.flush(running.conversation_id, **fields)
        except StorageError as exc:
            self.health.failed(exc)
        except Exception:
            logger.exception("could not record the end of %s", conversation_id)
        self.metadata_sync.forget(conversation_id)
        try:
            await self.ownership.release(conversation_id)
        except StorageError as exc:  # it expires by itself
            logger.warning("could not release the lease of %s: %s", conversation_id, exc)
        else:
            if self._wakeups is not None and self.ownership.clustered:
                self._wakeups.notify(LEASE_RELEASED, {"conversation_id": conversation_id})
