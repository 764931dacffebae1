"""A ConversationManager over in-memory (or SQLite) storage, fake sandboxes and a scripted LLM."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convo.cluster.local import LocalEventBus
from convo.config import Settings
from convo.domain.conversation import AgentState
from convo.domain.events import AgentStateChangedObservation, Event
from convo.llm.base import LLMClient, LLMConfig
from convo.llm.scripted import ScriptedLLM
from convo.runtime.base import SandboxSpec
from convo.runtime.fake import FakeSandbox
from convo.services.conversations import ConversationManager
from convo.storage.base import Storage
from tests.polling import wait_until as wait_until
from tests.storage.conftest import storage as storage  # the fixture: SQLite, PostgreSQL, memory


@dataclass
class FakeSandboxFactory:
    root: Path
    delay_seconds: float = 0.0  # every command takes this long
    fail_start: bool = False
    name: str = "fake"
    created: list[FakeSandbox] = field(default_factory=list)

    def create(self, spec: SandboxSpec) -> FakeSandbox:
        async def slow(_command: Any) -> None:
            await asyncio.sleep(self.delay_seconds)

        sandbox = FakeSandbox(
            self.root / spec.conversation_id, on_run=slow if self.delay_seconds else None
        )
        if self.fail_start:

            async def failing_start() -> None:
                raise RuntimeError("no sandbox today")

            sandbox.start = failing_start  # type: ignore[method-assign]
        self.created.append(sandbox)
        return sandbox


class ClosingGate(FakeSandboxFactory):
    """Fake sandboxes whose ``close`` waits for ``gate`` once it is armed."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = asyncio.Event()
        self.gate.set()
        self.closing = asyncio.Event()

    def create(self, spec: SandboxSpec) -> FakeSandbox:
        sandbox = super().create(spec)
        original = sandbox.close

        async def close() -> None:
            self.closing.set()
            await self.gate.wait()
            await original()

        sandbox.close = close  # type: ignore[method-assign]
        return sandbox


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "llm_model": "openai/scripted",
        "max_concurrent_conversations": 50,
        "reconcile_interval_seconds": 3600,
        "shutdown_grace_seconds": 4,
    }
    values.update(overrides)
    return Settings(**values)


def make_manager(
    settings: Settings,
    store: Storage,
    llm: ScriptedLLM,
    sandboxes: FakeSandboxFactory,
) -> ConversationManager:
    def factory(_config: LLMConfig) -> LLMClient:
        return llm

    return ConversationManager(
        settings=settings,
        storage=store,
        bus=LocalEventBus(),
        sandbox_factory=sandboxes,
        llm_factory=factory,
    )


def agent_states(events: list[Event]) -> list[str]:
    return [e.agent_state for e in events if isinstance(e, AgentStateChangedObservation)]


async def last_state(manager: ConversationManager, conversation_id: str) -> str | None:
    states = agent_states(await manager.event_log.history(conversation_id))
    return states[-1] if states else None


FINISHED = AgentState.FINISHED.value
