"""A user message sent while the loop is still STARTING reaches the model exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from convo.llm.scripted import ScriptedLLM, tool_response
from convo.runtime.base import SandboxSpec
from convo.runtime.fake import FakeSandbox
from convo.services.conversations import NewConversation
from convo.storage.memory import MemoryStorage
from tests.services.conftest import (
    FINISHED,
    FakeSandboxFactory,
    last_state,
    make_manager,
    make_settings,
    wait_until,
)


class GatedSandboxFactory(FakeSandboxFactory):
    """Sandboxes whose start waits until ``opened`` is set (the workspace is slow to prepare)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opened = asyncio.Event()
        self.starting = asyncio.Event()

    def create(self, spec: SandboxSpec) -> FakeSandbox:
        sandbox = super().create(spec)
        original = sandbox.start

        async def gated_start() -> None:
            self.starting.set()
            await self.opened.wait()
            await original()

        sandbox.start = gated_start  # type: ignore[method-assign]
        return sandbox


async def test_message_sent_while_starting_is_seen_once(tmp_path: Path) -> None:
    llm = ScriptedLLM([tool_response("finish", {"message": "done"})])
    sandboxes = GatedSandboxFactory(tmp_path / "ws")
    manager = make_manager(make_settings(tmp_path), MemoryStorage(), llm, sandboxes)
    async with manager:
        conversation_id = await manager.create(None, NewConversation())
        await manager.start(conversation_id, None)
        await sandboxes.starting.wait()
        await manager.send_user_event(
            conversation_id, {"action": "message", "args": {"content": "count to three"}}
        )
        sandboxes.opened.set()

        async def finished() -> bool:
            return await last_state(manager, conversation_id) == FINISHED

        await wait_until(finished, timeout=5)
    assert len(llm.requests) == 1
    mentions = [m for m in llm.requests[0].messages if "count to three" in str(m.get("content"))]
    assert len(mentions) == 1, llm.requests[0].messages
