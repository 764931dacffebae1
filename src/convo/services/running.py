"""One running conversation: its task, inbox, sandbox and status.

The task body prepares the sandbox (status STARTING), then hands over to the agent
(status RUNNING) until it is cancelled. Whatever happens, the sandbox is closed when the task
ends, and a failure becomes an error event and a truthful status, never a silent hang.

The same body resumes a conversation after a restart: the agent is rebuilt from the stored
events, in the same workspace, with a new shell. An action left without its result gets the
result the ``ActionJournal`` kept for it (the command had finished), or else an
"interrupted" observation.

Writes go through the ``DurableWriter``: a failed write is tried again through a storage
outage, and the loop carries on where it was. Past the retry limit the loop ends without
touching the stored state (it cannot): the supervisor resumes it once storage is back, and
the resumed loop stores the event telling what happened first.

Safe points, for a graceful shutdown: a conversation is at one unless an action of the agent
was stored and its observation was not yet (a command is running). Once ``draining`` is set,
the loop never starts new work: an action it would store next is dropped and the loop parks
until cancelled, so on the next start the model is simply asked again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convo.agent.controller import Agent, AgentConfig
from convo.agent.mcp_tools import McpToolbox
from convo.agent.recovery import EXECUTABLE_ACTIONS
from convo.agent.start_events import WorkspaceContext
from convo.domain.conversation import AgentState, ConversationMetadata, ConversationStatus
from convo.domain.events import (
    Event,
    EventSource,
    Observation,
    agent_state_changed,
    confirmation_state,
    error_observation,
    mask_secrets,
    mask_text,
)
from convo.errors import LeaseLost, StorageError
from convo.llm.base import LLMClientFactory, LLMConfig, LLMResponse
from convo.llm.model_info import accepts_images
from convo.runtime.base import Sandbox, SandboxFactory, SandboxSpec
from convo.runtime.exit_record import read_exit_record
from convo.services.action_journal import ActionJournal
from convo.services.durable_writes import DurableWriter
from convo.services.event_log import EventLog, status_update
from convo.services.live_llm import LiveLLM
from convo.services.orphans import ProcessRegistry
from convo.services.user_config import ConversationConfig
from convo.services.workspace_setup import prepare_workspace

logger = logging.getLogger(__name__)


@dataclass
class RunningConversation:
    metadata: ConversationMetadata
    config: ConversationConfig
    status: ConversationStatus = ConversationStatus.STARTING
    inbox: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    sandbox: Sandbox | None = None
    agent: Agent | None = None
    mcp: McpToolbox | None = None  # the user's MCP servers, while the loop runs
    last_active: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.monotonic)
    ending: bool = False  # the task is in its cleanup: a further cancel would cut it short
    pending_action: int | None = None  # id of the stored action still waiting for its result
    draining: bool = False  # the server shuts down: start no new work
    replay: list[LLMResponse] = field(default_factory=list)  # services.replay, consumed
    token: int | None = None  # its lease's fencing token (cluster mode); None: unfenced
    lease_lost: bool = False  # another node took it over: end without writing anything
    _safe: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._safe.set()

    @property
    def conversation_id(self) -> str:
        return self.metadata.conversation_id

    @property
    def user_id(self) -> str | None:
        return self.metadata.user_id

    def touch(self) -> None:
        self.last_active = time.monotonic()

    @property
    def agent_state(self) -> AgentState | None:
        return self.agent.state if self.agent is not None else None

    def note_started(self, action: Event) -> None:
        """A stored action's command starts now (late: after a resume)."""
        self.pending_action = action.id
        self._safe.clear()

    def note_stored(self, event: Event) -> None:
        """Track the action in flight, for safe points."""
        if _starts_work(event):
            self.pending_action = event.id
            self._safe.clear()
        elif isinstance(event, Observation) and event.cause == self.pending_action:
            self.pending_action = None
            self._safe.set()

    async def park(self) -> None:
        """Stay at this safe point until the task is cancelled (the server shuts down)."""
        self.pending_action = None
        self._safe.set()
        await asyncio.Future()

    async def wait_safe_point(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait (at most ``timeout`` s) until no action is in flight; True if none is."""
        try:
            await asyncio.wait_for(self._safe.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def is_idle(self) -> bool:
        """Not working: waiting for the user, finished, errored, paused or stopped."""
        return self.status is ConversationStatus.RUNNING and self.agent_state not in (
            AgentState.RUNNING,
            AgentState.LOADING,
            None,
        )


@dataclass(frozen=True)
class LoopDeps:
    event_log: EventLog
    sandbox_factory: SandboxFactory
    llm_factory: LLMClientFactory
    workspace_for: Callable[[str], Any]  # conversation id -> host Path
    command_timeout_seconds: float
    max_output_chars: int
    processes: ProcessRegistry
    on_event: Callable[[RunningConversation, Event], Awaitable[None]]
    on_exit: Callable[[RunningConversation, BaseException | None], Awaitable[None]]
    writer: DurableWriter
    journal: ActionJournal
    # the conversation's LLM configuration as it is now (the user's saved settings over the
    # server's); None: the one it started with, for good
    llm_config: Callable[[RunningConversation], Awaitable[LLMConfig | None]] | None = None


def live_llm(conversation: RunningConversation, deps: LoopDeps, secrets: list[str]) -> LiveLLM:
    """The loop's LLM: it follows settings changes at each call, and a new key joins the
    secrets masked in this loop's events."""
    initial = conversation.config.llm
    source = deps.llm_config

    async def current() -> LLMConfig | None:
        return await source(conversation) if source is not None else initial

    def changed(config: LLMConfig | None) -> None:
        conversation.config = replace(conversation.config, llm=config)
        secrets.extend(v for v in conversation.config.secret_values() if v not in secrets)

    return LiveLLM(deps.llm_factory, current, initial, changed, conversation.replay)


async def run_conversation(conversation: RunningConversation, deps: LoopDeps) -> None:
    """The body of a conversation's task."""
    secrets = conversation.config.secret_values()

    conversation_id = conversation.conversation_id

    def exit_record() -> str:
        return read_exit_record(Path(deps.workspace_for(conversation_id)))

    async def emit(event: Event) -> Event:
        if conversation.draining and _starts_work(event):
            await conversation.park()
        result = _answers_pending(conversation, event)
        if result:  # kept before it is stored: a crash from now on does not lose it
            await deps.journal.record(
                conversation_id, mask_secrets(event, secrets), token=conversation.token
            )
        stored = await deps.writer.append(conversation_id, event, secrets, token=conversation.token)
        if result:
            deps.journal.stored(conversation_id, stored)
        conversation.note_stored(stored)
        if conversation.pending_action == stored.id:  # its command starts now
            await deps.journal.started(
                conversation_id, stored.id, exit_record(), token=conversation.token
            )
        conversation.touch()
        try:
            await deps.on_event(conversation, stored)
        except StorageError as exc:  # metadata only: the next write catches up
            deps.writer.health.failed(exc)
        return stored

    async def resumed_action(action: Event) -> Event:
        conversation.note_started(action)
        await deps.journal.started(
            conversation_id, action.id, exit_record(), token=conversation.token
        )
        return action

    failure: BaseException | None = None
    try:
        await emit(agent_state_changed(AgentState.LOADING))
        await _warn_withheld_secrets(conversation, emit)
        notice = deps.writer.take_notice(conversation_id)
        if notice is not None:  # why the previous loop ended
            await emit(notice)
        sandbox = deps.sandbox_factory.create(
            SandboxSpec(
                conversation_id=conversation.conversation_id,
                workspace=deps.workspace_for(conversation.conversation_id),
                env=conversation.config.env,
                command_timeout_seconds=deps.command_timeout_seconds,
                max_output_chars=deps.max_output_chars,
            )
        )
        conversation.sandbox = sandbox
        await sandbox.start()
        deps.processes.register(conversation.conversation_id, getattr(sandbox, "shell_pid", None))
        instructions = await prepare_workspace(
            conversation.metadata, sandbox, emit, conversation.config
        )
        conversation.mcp = await _connect_mcp(conversation, sandbox, emit, deps, secrets)
        llm = live_llm(conversation, deps, secrets)
        history = await deps.event_log.history(conversation.conversation_id)
        conversation.agent = Agent(
            llm=llm,
            sandbox=sandbox,
            emit=emit,
            config=AgentConfig(
                max_iterations=conversation.config.max_iterations,
                max_budget_per_task=conversation.config.max_budget_per_task,
                command_timeout_seconds=deps.command_timeout_seconds,
                extra_instructions=instructions,
                confirmation_mode=conversation.config.confirmation_mode,
                condenser=conversation.config.condenser,
                vision=await _accepts_images(conversation.config),
                llm_model=conversation.config.llm.model if conversation.config.llm else "",
                workspace=WorkspaceContext(
                    repository=conversation.metadata.selected_repository,
                    branch=conversation.metadata.selected_branch,
                    instructions=instructions,
                    conversation_instructions=conversation.metadata.conversation_instructions or "",
                    secrets=conversation.config.secret_descriptions,
                ),
            ),
            history=history,
            journal=await deps.journal.view(
                conversation_id, exit_record(), token=conversation.token
            ),
            on_resumed_action=resumed_action,
            mcp=conversation.mcp,
        )
        conversation.status = ConversationStatus.RUNNING
        await deps.event_log.publish_status(
            conversation.conversation_id,
            status_update("info", "STATUS$READY", "ready to run"),
        )
        await _until_sandbox_fails(
            conversation.agent.run(conversation.inbox), sandbox, conversation.conversation_id
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the loop must never die silently
        failure = exc
        await _failed(conversation, deps, emit, exc, secrets)
    finally:
        conversation.ending = True
        await asyncio.shield(_close_tools(conversation, deps))
        await asyncio.shield(deps.on_exit(conversation, failure))


async def _close_tools(conversation: RunningConversation, deps: LoopDeps) -> None:
    """The MCP servers' connections, then the sandbox (which kills what it started)."""
    if conversation.mcp is not None:
        await conversation.mcp.close()
    if conversation.sandbox is not None:
        await conversation.sandbox.close()
        deps.processes.unregister(conversation.conversation_id)


SECRET_WITHHELD = "STATUS$SECRET_WITHHELD"


async def _warn_withheld_secrets(
    conversation: RunningConversation, emit: Callable[[Event], Awaitable[Event]]
) -> None:
    """A warning event for each stored secret this start leaves out (the start goes on)."""
    for name, reason in sorted(conversation.config.withheld_secrets.items()):
        text = (
            f"The secret {name} was not passed to this conversation: {reason}. "
            "Rename or delete it in the secrets settings."
        )
        logger.warning("conversation %s: %s", conversation.conversation_id, text)
        await emit(
            error_observation(text, error_id=SECRET_WITHHELD, source=EventSource.ENVIRONMENT)
        )


MCP_ERROR = "STATUS$ERROR_MCP"


async def _connect_mcp(
    conversation: RunningConversation,
    sandbox: Sandbox,
    emit: Callable[[Event], Awaitable[Event]],
    deps: LoopDeps,
    secrets: list[str],
) -> McpToolbox | None:
    """The user's MCP servers, started and listed; a problem with one is a one-line error
    event for the user (the loop starts without that server's tools)."""
    config = conversation.config
    notices = [f"MCP servers not used: {config.mcp_error}"] if config.mcp_error else []
    toolbox = None
    if config.mcp is not None:
        toolbox = await McpToolbox.connect(
            config.mcp,
            sandbox,
            conversation_id=conversation.conversation_id,
            max_output_chars=deps.max_output_chars,
        )
        notices += toolbox.notices
    for text in notices:
        shown = mask_text(text, secrets)  # a server's error output may quote its key
        logger.warning("conversation %s: %s", conversation.conversation_id, shown)
        await emit(error_observation(shown, error_id=MCP_ERROR, source=EventSource.ENVIRONMENT))
    return toolbox


async def _until_sandbox_fails(
    agent_run: Coroutine[Any, Any, None], sandbox: Sandbox, name: str
) -> None:
    """Run the agent; if its sandbox fails first (a workspace over its disk quota, whose
    commands were stopped), cancel the agent and raise the sandbox's error, which ends the
    conversation with an error event."""
    agent = asyncio.create_task(agent_run, name=f"agent:{name}")
    failed = asyncio.create_task(sandbox.wait_failed(), name=f"sandbox-failure:{name}")
    try:
        await asyncio.wait((agent, failed), return_when=asyncio.FIRST_COMPLETED)
        if not agent.done():
            raise failed.result()
        agent.result()
    finally:
        for task in (agent, failed):
            task.cancel()
        await asyncio.gather(agent, failed, return_exceptions=True)


def _answers_pending(conversation: RunningConversation, event: Event) -> bool:
    """The observation of the action in flight (its command's result)."""
    pending = conversation.pending_action
    return pending is not None and isinstance(event, Observation) and event.cause == pending


def _starts_work(event: Event) -> bool:
    """An agent action that runs now (one waiting for, or refused, confirmation does not)."""
    if event.source != EventSource.AGENT or not isinstance(event, EXECUTABLE_ACTIONS):
        return False
    return confirmation_state(event) not in ("awaiting_confirmation", "rejected")


async def _failed(
    conversation: RunningConversation,
    deps: LoopDeps,
    emit: Callable[[Event], Awaitable[Event]],
    exc: Exception,
    secrets: Iterable[str],
) -> None:
    conversation_id = conversation.conversation_id
    if isinstance(exc, LeaseLost):  # another node runs it now: not one more write
        conversation.lease_lost = True
        logger.warning("conversation %s: %s; its loop ends here", conversation_id, exc)
        return
    if isinstance(exc, StorageError):  # retried to the limit: resumed once storage is back
        deps.writer.defer_notice(conversation_id, exc)
        logger.warning("conversation %s paused, storage failing: %s", conversation_id, exc)
        return
    logger.error(  # the traceback with secrets masked: an exception may quote one
        "conversation %s failed:\n%s",
        conversation_id,
        mask_text("".join(traceback.format_exception(exc)), secrets),
    )
    await _report_failure(conversation, deps, emit, exc)


async def _report_failure(
    conversation: RunningConversation,
    deps: LoopDeps,
    emit: Callable[[Event], Awaitable[Event]],
    exc: Exception,
) -> None:
    starting = conversation.status is ConversationStatus.STARTING
    message_id = "STATUS$ERROR_RUNTIME_DISCONNECTED" if starting else "STATUS$ERROR"
    text = f"{'Failed to start conversation' if starting else 'Conversation failed'}: {exc}"
    try:
        stored = await emit(error_observation(text, error_id=message_id))
        shown = (stored.content if isinstance(stored, Observation) else "") or text  # masked
        await emit(agent_state_changed(AgentState.ERROR, reason=shown))
        await deps.event_log.publish_status(
            conversation.conversation_id, status_update("error", message_id, shown)
        )
    except Exception:
        logger.exception("could not record the failure of %s", conversation.conversation_id)


async def _accepts_images(config: ConversationConfig) -> bool:
    """Whether the conversation's model takes images (``llm.model_info``; reads a file)."""
    if config.llm is None:
        return True
    return await asyncio.to_thread(accepts_images, config.llm.model)
