"""Agent test kit: a recording event sink and a harness running Agent (with the real editor)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from convo.agent.controller import Agent, AgentConfig
from convo.agent.executor import Editor
from convo.agent.mcp_tools import McpTools
from convo.domain.conversation import AgentState
from convo.domain.events import (
    Event,
    EventSource,
    ObservationType,
    change_agent_state_action,
    message_action,
)
from convo.llm.base import LLMClient
from convo.runtime.base import Sandbox
from convo.runtime.fake import FakeSandbox


@dataclass
class Harness:
    llm: LLMClient
    sandbox: Sandbox
    config: AgentConfig = field(default_factory=AgentConfig)
    history: Sequence[Event] = ()
    editor: Editor | None = None
    mcp: McpTools | None = None
    events: list[Event] = field(default_factory=list)
    inbox: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.events = list(self.history)
        self.agent = Agent(
            llm=self.llm,
            sandbox=self.sandbox,
            emit=self.store,
            config=self.config,
            history=self.history,
            editor=self.editor,
            mcp=self.mcp,
        )

    async def store(self, event: Event) -> Event:
        return self.store_now(event)

    def store_now(self, event: Event) -> Event:
        stored = event.stored(len(self.events))
        self.events.append(stored)
        return stored

    def send(self, text: str) -> Event:
        event = self.store_now(message_action(text, EventSource.USER))
        self.inbox.put_nowait(event)
        return event

    def set_state(self, state: AgentState) -> Event:
        event = self.store_now(change_agent_state_action(state, EventSource.USER))
        self.inbox.put_nowait(event)
        return event

    def start(self) -> None:
        self.task = asyncio.create_task(self.agent.run(self.inbox), name="agent-under-test")

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                if self.task is not None and self.task.done():
                    self.task.result()  # raises what ended the loop
                    raise AssertionError("the agent loop returned")
                await asyncio.sleep(0.005)

    async def settle(self, state: AgentState, timeout: float = 5.0) -> None:
        """Wait until the inbox is consumed and the agent rests in ``state``."""
        await self.until(lambda: self.inbox.empty() and self.agent.state == state, timeout)

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    # --- views -----------------------------------------------------------------------------
    def kinds(self) -> list[tuple[str, str]]:
        """(source, action or observation) of every event except state changes."""
        return [
            (e.source.value, str(e.action or e.observation))
            for e in self.events
            if e.observation != ObservationType.AGENT_STATE_CHANGED
        ]

    def states(self) -> list[str]:
        return [
            str((e.extras or {})["agent_state"])
            for e in self.events
            if e.observation == ObservationType.AGENT_STATE_CHANGED
        ]

    def errors(self) -> list[Event]:
        return [e for e in self.events if e.observation == ObservationType.ERROR]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if kind in (e.action, e.observation)]


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def sandbox(tmp_path: Path) -> FakeSandbox:
    root = tmp_path / "workspace"
    root.mkdir()
    return FakeSandbox(root)


@pytest.fixture
async def make_harness(sandbox: FakeSandbox) -> AsyncIterator[HarnessFactory]:
    harnesses: list[Harness] = []

    def factory(llm: LLMClient, **kwargs: Any) -> Harness:
        kwargs.setdefault("sandbox", sandbox)
        harness = Harness(llm, **kwargs)
        harnesses.append(harness)
        return harness

    yield factory
    for harness in harnesses:
        await harness.stop()
