"""The supervisor notices a loop that stopped making progress and restarts it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from convo.llm.base import LLMResponse
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.services.conversations import NewConversation
from convo.storage.memory import MemoryStorage
from tests.polling import wait_until
from tests.services.conftest import (
    FINISHED,
    FakeSandboxFactory,
    last_state,
    make_manager,
    make_settings,
)


class HangsOnce(ScriptedLLM):
    """Its first call never answers (a provider that stalls with no timeout)."""

    def __init__(self) -> None:
        super().__init__(when_exhausted=tool_response("finish", {"message": "done"}))
        self.calls = 0

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> LLMResponse:
        self.calls += 1
        if self.calls == 1:
            await asyncio.Event().wait()
        return await super().complete(messages, tools)


async def test_a_loop_that_stored_nothing_for_too_long_is_restarted(tmp_path: Path) -> None:
    storage = MemoryStorage()
    llm = HangsOnce()
    settings = make_settings(tmp_path, stalled_loop_seconds=0.5)
    manager = make_manager(settings, storage, llm, FakeSandboxFactory(tmp_path))
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="go"))
        await manager.start(conversation_id, None)
        await wait_until(lambda: llm.calls == 1, what="the first LLM call")
        assert await manager.supervisor.restart_stalled() == []  # not stalled yet
        running = manager.running_conversations()[0]
        await wait_until(lambda: time.monotonic() - running.last_active > 0.5, what="a stall")
        assert await manager.supervisor.restart_stalled() == [conversation_id]
        assert (await manager.supervisor.reconcile()).resumed == [conversation_id]

        async def finished() -> bool:
            return await last_state(manager, conversation_id) == FINISHED

        await wait_until(finished, what="the restarted loop to finish")
    assert llm.calls == 2
