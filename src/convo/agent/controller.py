"""The agent loop of one conversation: user events in, action/observation events out.

``Agent.run`` owns the agent state. It steps while RUNNING: take pending inbox events, check
stuck patterns and caps, call the LLM with the history, emit the actions, run them, emit the
observations. Otherwise it waits on the inbox. Failures never end the loop: LLM errors, caps
and unexpected exceptions become an ``error`` event plus the ERROR state, and the next user
message starts over. Only cancellation ends ``run``.

Hooks: a user message is answered by its recall events first (``agent.recall``: the
workspace context for the first, the knowledge microagents it triggers for each);
each LLM call sees the condensed view of the history (``agent.condenser``); in confirmation
mode shell and edit actions wait for ``user_confirmed``/``user_rejected``
(``agent.confirmation``). Stopping mid-step: events are read between steps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from convo.agent import confirmation, microagents, recall, start_events
from convo.agent.condenser import Condenser, CondenserConfig, is_context_overflow
from convo.agent.executor import ActionExecutor, Editor, run_observation, tool_error
from convo.agent.failures import (
    ERROR_BUDGET,
    ERROR_INTERRUPTED,
    ERROR_MAX_ITERATIONS,
    ERROR_NO_ACTION,
    ERROR_STUCK,
    ERROR_TOOL_CALL,
    ERROR_TOOL_FAILED,
    ERROR_UNEXPECTED,
    llm_error_message,
)
from convo.agent.mcp_tools import McpTools
from convo.agent.metrics import LLMMetrics
from convo.agent.prompts import build_system_prompt
from convo.agent.recovery import (
    JournalView,
    interrupted_actions,
    iterations_since_user,
    unanswered,
)
from convo.agent.start_events import WorkspaceContext
from convo.agent.stuck import detect_stuck
from convo.agent.tools import (
    InvalidToolCall,
    action_from_tool_call,
    tool_call_metadata,
    tool_specs,
)
from convo.domain.conversation import AgentState
from convo.domain.events import (
    AgentFinishAction,
    ChangeAgentStateAction,
    CmdRunAction,
    Event,
    EventSink,
    EventSource,
    FileEditAction,
    FileReadAction,
    FileWriteAction,
    MessageAction,
    RecallAction,
    agent_state_changed,
    confirmation_state,
    error_observation,
    message_action,
)
from convo.errors import LLMBadRequestError, LLMError, StorageError
from convo.llm.base import LLMClient, LLMResponse, ToolCall
from convo.runtime.base import CommandResult, Sandbox

logger = logging.getLogger(__name__)


_STOPPING_STATES = {AgentState.PAUSED.value, AgentState.STOPPED.value}
_DECISIONS = {AgentState.USER_CONFIRMED.value, AgentState.USER_REJECTED.value}
_USER_ACTIONS = (CmdRunAction, FileReadAction, FileEditAction, FileWriteAction)


@dataclass(frozen=True)
class AgentConfig:
    max_iterations: int = 100
    max_budget_per_task: float | None = None
    command_timeout_seconds: float = 120.0
    extra_instructions: str | None = None
    confirmation_mode: bool = False  # shell and edit actions wait for the user's confirmation
    condenser: CondenserConfig = field(default_factory=CondenserConfig)
    vision: bool = True  # the model takes images (user messages' images as image parts)
    llm_model: str = ""  # named in llm_metrics
    workspace: WorkspaceContext = field(default_factory=WorkspaceContext)  # for the recall


class Agent:
    """A CodeAct-style agent for one conversation. Create one per run of the loop."""

    def __init__(
        self,
        *,
        llm: LLMClient,
        sandbox: Sandbox,
        emit: EventSink,
        config: AgentConfig,
        history: Sequence[Event] = (),
        editor: Editor | None = None,
        journal: JournalView | None = None,
        on_resumed_action: EventSink | None = None,
        mcp: McpTools | None = None,
    ) -> None:
        self._llm = llm
        self._sandbox = sandbox
        self._sink = emit
        self.config = config
        self._history: list[Event] = list(history)
        self._state = AgentState.LOADING
        self._mcp = mcp  # the user's MCP servers' tools, listed at the loop's start
        self._executor = ActionExecutor(
            sandbox,
            editor=editor,
            command_timeout_seconds=config.command_timeout_seconds,
            mcp=mcp,
        )
        self._metrics = LLMMetrics.from_history(
            self._history, config.max_budget_per_task, config.llm_model
        )
        self._iterations = iterations_since_user(self._history)
        self._budget_limit = config.max_budget_per_task
        self._system_prompt: str | None = None
        self._condenser = Condenser(config.condenser)
        self._pending: Event | None = None  # the action awaiting the user's confirmation
        self._parked: tuple[list[ToolCall], LLMResponse] | None = None  # calls still to run
        self._resume_state: AgentState | None = None  # after a user's confirmed action
        self._journal = journal  # what a dead loop recorded of its actions
        self._on_resumed_action = on_resumed_action  # told before a stored action runs late

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def history(self) -> tuple[Event, ...]:
        """The stored events the agent knows of, in order."""
        return tuple(self._history)

    @property
    def system_prompt(self) -> str:
        if self._system_prompt is None:
            self._system_prompt = build_system_prompt(
                self._sandbox.workspace_path,
                extra_instructions=self.config.extra_instructions,
                secrets=self.config.workspace.secrets,
            )
        return self._system_prompt

    # --- the loop ------------------------------------------------------------------------
    async def run(self, inbox: asyncio.Queue[Event]) -> None:
        """Run until cancelled. ``inbox`` receives stored user events."""
        await self._guarded(self._recover(inbox))
        while True:
            if self._state == AgentState.RUNNING:
                await self._guarded(self._drain_then_step(inbox))
            else:
                event = await inbox.get()
                await self._guarded(self._apply(event))

    async def _guarded(self, work: Awaitable[None]) -> None:
        """Run one unit of work; an unexpected exception becomes an error event + ERROR.

        A StorageError (the sink gave up storing an event) ends ``run``: without its event
        log the agent cannot go on, and its loop is resumed once storage is back."""
        try:
            await work
        except StorageError:
            raise
        except Exception as exc:
            logger.exception("Unexpected error in the agent loop")
            try:
                await self._fail(
                    f"Unexpected error in the agent: {type(exc).__name__}: {exc}", ERROR_UNEXPECTED
                )
            except StorageError:
                raise
            except Exception:
                logger.exception("Could not record the agent loop's error")
                self._state = AgentState.ERROR

    async def _recover(self, inbox: asyncio.Queue[Event]) -> None:
        """Close actions a dead loop left open, then pick the first state.

        An action whose command finished (the ``journal`` kept its result) gets that result:
        running it again could repeat a non-idempotent command. One whose command never
        started runs now. Only one cut off while running is reported as interrupted.

        User messages already queued count as unanswered, so the first state is RUNNING
        straight away; other queued events are applied after it, in order. An event queued
        while the loop was starting may also be in the stored history it was built from: it
        is not added to the history twice.
        """
        await self._close_interrupted()
        if not start_events.has_system_action(self._history):
            await self._emit(start_events.system_action(self.system_prompt, self._tool_specs()))
        queued: list[Event] = []
        while not inbox.empty():
            queued.append(inbox.get_nowait())
        known = {event.id for event in self._history}
        for event in queued:
            if _is_user_message(event) and event.id not in known:
                self._history.append(event)
                self._extend_limits()
        running = unanswered(self._history)
        self._pending, message_after = confirmation.waiting_on_restart(self._history)
        if self._pending is not None:
            running = message_after
            if message_after:  # a message came instead of a decision
                await self._reject("the user sent a new message instead")
        if running:
            last = next(e for e in reversed(self._history) if _is_user_message(e))
            await self._recall(last)
        if self._pending is not None:
            await self._set_state(AgentState.AWAITING_USER_CONFIRMATION)
        else:
            await self._set_state(AgentState.RUNNING if running else AgentState.AWAITING_USER_INPUT)
        for event in queued:
            if not _is_user_message(event):
                await self._apply(event, in_history=event.id in known)

    async def _close_interrupted(self) -> None:
        """The observation of each action a dead loop left without one (see ``_recover``)."""
        for action in interrupted_actions(self._history):
            fate, result = (
                self._journal.fate(action) if self._journal is not None else ("cut_off", action)
            )
            if fate == "finished":
                await self._emit(result)
                continue
            if fate == "exited" and isinstance(action, CmdRunAction) and self._journal:
                status = self._journal.exit_status
                note = (
                    f"[The command had finished with exit code {status} when the conversation "
                    "was restarted; its output was lost. Do not run it again just to see it "
                    "finish.]"
                )
                await self._emit(
                    run_observation(action, CommandResult(note, status or 0, "", False))
                )
                continue
            if fate == "not_started":
                if self._on_resumed_action is not None:
                    await self._on_resumed_action(action)
                await self._execute(action, str(action.action))
                continue
            await self._emit(
                tool_error(
                    "The action was interrupted (the conversation was restarted) and did not "
                    "finish; run it again if it is still needed.",
                    error_id=ERROR_INTERRUPTED,
                    action=action,
                )
            )

    async def _drain_then_step(self, inbox: asyncio.Queue[Event]) -> None:
        await asyncio.sleep(0)  # let others run between steps, even when nothing else awaits
        while not inbox.empty():
            await self._apply(inbox.get_nowait())
        if self._state == AgentState.RUNNING:
            await self._step()

    async def _apply(self, event: Event, *, in_history: bool = False) -> None:
        """Take one stored user event from the inbox."""
        if not in_history:
            self._history.append(event)
        if _is_user_message(event):
            self._extend_limits()
            if self._pending is not None:
                await self._reject("the user sent a new message instead")
            await self._recall(event)
            await self._set_state(AgentState.RUNNING)
            return
        if event.source == EventSource.USER and isinstance(event, _USER_ACTIONS):
            await self._user_action(event)
            return
        if not isinstance(event, ChangeAgentStateAction):
            logger.debug("Agent ignores a %s event from the inbox", event.action)
            return
        target = event.agent_state
        if target in _STOPPING_STATES:
            await self._set_state(AgentState(target))
        elif self._pending is not None and target in _DECISIONS:
            await self._decide(target == AgentState.USER_CONFIRMED.value)
        elif self._pending is not None and target == AgentState.RUNNING.value:
            await self._set_state(AgentState.AWAITING_USER_CONFIRMATION)
        elif target == AgentState.RUNNING.value:
            if self._state == AgentState.ERROR:
                self._extend_limits()
            await self._set_state(AgentState.RUNNING)
        else:
            logger.info("Agent ignores a request for state %r", target)

    def _extend_limits(self) -> None:
        """A new user turn: iterations count from zero, and a spent budget is extended."""
        self._iterations = 0
        budget = self.config.max_budget_per_task
        if (
            budget is not None
            and self._budget_limit is not None
            and (self._metrics.cost >= self._budget_limit)
        ):
            self._budget_limit = self._metrics.cost + budget

    # --- one step ------------------------------------------------------------------------
    def _cap_reached(self) -> tuple[str, str] | None:
        if self._iterations >= self.config.max_iterations:
            return (
                f"Agent reached the maximum iteration limit ({self.config.max_iterations} "
                "steps since the last user message). Send a message to continue.",
                ERROR_MAX_ITERATIONS,
            )
        if self._budget_limit is not None and self._metrics.cost >= self._budget_limit:
            return (
                f"Agent reached the maximum budget per task (${self._budget_limit:.4f}; "
                f"spent ${self._metrics.cost:.4f}). Send a message to continue.",
                ERROR_BUDGET,
            )
        return None

    async def _messages(self, *, condense: bool = False) -> list[dict[str, Any]]:
        """The LLM messages of the condensed view (``agent.condenser``)."""
        return await self._condenser.messages(
            self._llm,
            self.system_prompt,
            self._history,
            self._condensed,
            force=condense,
            vision=self.config.vision,
        )

    async def _condensed(self, action: Event, response: LLMResponse) -> None:
        self._metrics.add(response, await self._condenser.context_window())
        await self._emit(action.model_copy(update={"llm_metrics": self._metrics.snapshot()}))

    def _tool_specs(self) -> list[dict[str, Any]]:
        """The built-in tools, then the MCP servers' tools."""
        return tool_specs() + (self._mcp.specs() if self._mcp is not None else [])

    async def _complete(self) -> LLMResponse:
        """One LLM call; a request refused as too long is condensed and tried once more."""
        try:
            return await self._llm.complete(await self._messages(), self._tool_specs())
        except LLMBadRequestError as exc:
            if not is_context_overflow(exc):
                raise
            logger.info("The LLM refused the context as too long; condensing")
            messages = await self._messages(condense=True)
            return await self._llm.complete(messages, self._tool_specs())

    async def _step(self) -> None:
        pattern = detect_stuck(self._history)
        if pattern is not None:
            await self._fail(f"Agent got stuck in a loop: {pattern}.", ERROR_STUCK)
            return
        cap = self._cap_reached()
        if cap is not None:
            await self._fail(*cap)
            return
        try:
            response = await self._complete()
        except LLMError as exc:
            await self._fail(*llm_error_message(exc))
            return
        self._iterations += 1
        self._metrics.add(response, await self._condenser.context_window())
        if not response.tool_calls:
            await self._answer(response)
            return
        await self._run_calls(list(response.tool_calls), response, response.content or "")

    async def _run_calls(self, calls: list[ToolCall], response: LLMResponse, thought: str) -> None:
        for index, call in enumerate(calls):
            if await self._handle_call(call, response, thought):
                await self._set_state(AgentState.FINISHED)
                return
            if self._pending is not None:  # parked until the user decides
                self._parked = (calls[index + 1 :], response)
                await self._set_state(AgentState.AWAITING_USER_CONFIRMATION)
                return
            thought = ""

    async def _answer(self, response: LLMResponse) -> None:
        """A response without tool calls: a message to the user, then wait for them."""
        if not response.content:
            await self._emit(
                error_observation(
                    "Your response had neither text nor a tool call. Use a tool, or answer the "
                    "user in text.",
                    error_id=ERROR_NO_ACTION,
                )
            )
            return
        message = message_action(response.content, EventSource.AGENT, wait_for_response=True)
        await self._emit(message.model_copy(update={"llm_metrics": self._metrics.snapshot()}))
        await self._set_state(AgentState.AWAITING_USER_INPUT)

    async def _handle_call(self, call: ToolCall, response: LLMResponse, thought: str) -> bool:
        """Emit and run one tool call's action; True when the agent finished."""
        try:
            action = action_from_tool_call(
                call,
                response,
                thought=thought,
                default_timeout=self.config.command_timeout_seconds,
                mcp_tools=self._mcp.names if self._mcp is not None else frozenset(),
            )
        except InvalidToolCall as exc:
            await self._emit(
                tool_error(
                    str(exc),
                    error_id=ERROR_TOOL_CALL,
                    tool_call_metadata=tool_call_metadata(call, response),
                )
            )
            return False
        action = action.model_copy(update={"llm_metrics": self._metrics.snapshot()})
        if confirmation.needs_confirmation(action, self.config.confirmation_mode):
            self._pending = await self._emit(confirmation.with_state(action, confirmation.AWAITING))
            return False
        stored = await self._emit(action)
        if isinstance(stored, AgentFinishAction):
            return True
        await self._execute(stored, call.name)
        return False

    async def _execute(self, stored: Event, name: str) -> None:
        try:
            observation = await self._executor.execute(stored)
        except Exception as exc:
            logger.exception("Tool %s crashed", name)
            observation = tool_error(
                f"The tool crashed: {type(exc).__name__}: {exc}",
                error_id=ERROR_TOOL_FAILED,
                action=stored,
            )
        await self._emit(observation)

    # --- the user's own actions ----------------------------------------------------------
    async def _user_action(self, action: Event) -> None:
        """Carry out a user's run/read/edit (the web terminal's commands); the agent is not
        asked to act on it. In confirmation mode it waits like the agent's actions; while
        an action already waits, the user's is refused."""
        if confirmation_state(action) != confirmation.AWAITING:
            await self._execute(action, str(action.action))
            return
        if self._pending is not None:
            stored = await self._emit(confirmation.with_state(action, confirmation.REJECTED))
            await self._emit(confirmation.rejection(stored, "another action awaits confirmation"))
            return
        self._pending = action
        self._resume_state = self._state
        await self._set_state(AgentState.AWAITING_USER_CONFIRMATION)

    # --- confirmation mode and recall ------------------------------------------------------
    async def _decide(self, confirmed: bool) -> None:
        """The user's decision on the pending action (``agent.confirmation``)."""
        if not confirmed:
            await self._set_state(AgentState.USER_REJECTED)
            await self._reject("the user rejected it")
            await self._set_state(AgentState.AWAITING_USER_INPUT)
            return
        pending, self._pending = self._pending, None
        assert pending is not None
        await self._set_state(AgentState.USER_CONFIRMED)
        stored = await self._emit(confirmation.with_state(pending, confirmation.CONFIRMED))
        await self._execute(stored, str(stored.action))
        if pending.source == EventSource.USER:  # the agent goes back to what it was doing
            resume, self._resume_state = self._resume_state, None
            await self._set_state(resume or AgentState.AWAITING_USER_INPUT)
            return
        await self._set_state(AgentState.RUNNING)
        parked, self._parked = self._parked, None
        if parked is not None and parked[0]:
            await self._run_calls(*parked, "")

    async def _reject(self, reason: str) -> None:
        pending, self._pending, self._parked = self._pending, None, None
        if pending is not None:
            stored = await self._emit(confirmation.with_state(pending, confirmation.REJECTED))
            await self._emit(confirmation.rejection(stored, reason))

    async def _recall(self, message: Event) -> None:
        """The recall of a user message (``agent.recall``): its recall action (the workspace
        context for the first message, knowledge for later ones), then the environment's
        answer. Done once per message; a restart finishes one a dead loop began."""
        if not isinstance(message, MessageAction):
            return
        done = recall.progress(self._history, message)
        if done.answered:
            return
        action = done.action
        if action is None:
            first = start_events.needs_workspace_recall(self._history)
            recall_type = start_events.WORKSPACE_CONTEXT if first else recall.KNOWLEDGE
            stored = await self._emit(recall.recall_action(message, recall_type))
            assert isinstance(stored, RecallAction)
            action = stored
        knowledge = await asyncio.to_thread(
            microagents.knowledge, self._sandbox.workspace, action.query
        )
        if action.recall_type == start_events.WORKSPACE_CONTEXT:
            path = self._sandbox.workspace_path
            await self._emit(
                recall.workspace_observation(action, self.config.workspace, path, knowledge)
            )
        else:
            await self._emit(recall.knowledge_observation(action, knowledge))

    # --- events and state ------------------------------------------------------------------
    async def _emit(self, event: Event) -> Event:
        stored = await self._sink(event)
        self._history.append(stored)
        return stored

    async def _set_state(self, state: AgentState, reason: str = "") -> None:
        if state == self._state:
            return
        self._state = state
        await self._emit(agent_state_changed(state, reason))

    async def _fail(self, message: str, error_id: str) -> None:
        """An error event, then the ERROR state: the loop waits for the user."""
        await self._emit(error_observation(message, error_id=error_id))
        await self._set_state(AgentState.ERROR, message)


def _is_user_message(event: Event) -> bool:
    return isinstance(event, MessageAction) and event.source == EventSource.USER
