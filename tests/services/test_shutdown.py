"""Graceful shutdown: no new starts, running commands finish within the grace period, loops
stop without recording a user stop (they resume on the next start)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from convo.domain.conversation import AgentState, UserSettings
from convo.errors import ServerShuttingDown
from convo.llm.base import LLMResponse
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.services.conversations import NewConversation
from convo.storage.memory import MemoryStorage
from tests.services.conftest import FakeSandboxFactory, make_manager, make_settings, wait_until


def _run(command: str) -> LLMResponse:
    return tool_response("execute_bash", {"command": command})


async def test_a_running_command_finishes_and_no_new_one_starts(tmp_path: Path) -> None:
    storage = MemoryStorage()
    llm = ScriptedLLM([_run("first"), _run("second")])
    sandboxes = FakeSandboxFactory(tmp_path, delay_seconds=0.4)
    manager = make_manager(make_settings(tmp_path), storage, llm, sandboxes)
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="go"))
        await manager.start(conversation_id, None)
        running = manager.running_conversations()[0]
        await wait_until(lambda: running.pending_action is not None)
        await manager.shutdown()
        with pytest.raises(ServerShuttingDown):
            await manager.start(conversation_id, None)
        with pytest.raises(ServerShuttingDown):
            await manager.create(None, NewConversation())
    history = await storage.events.list(conversation_id)
    commands = [e.args["command"] for e in history if e.action == "run" and e.args]
    assert commands == ["first"]  # the second was never stored
    answers = [e.observation for e in history if e.cause is not None and e.observation != "recall"]
    assert answers == ["run"]
    assert [c.command for c in sandboxes.created[0].commands] == ["first"]
    assert sandboxes.created[0].closed
    assert (await storage.conversations.get(conversation_id)).desired_running


GRACE = 2.0


async def test_the_grace_period_bounds_a_long_command(tmp_path: Path) -> None:
    storage = MemoryStorage()
    llm = ScriptedLLM(when_exhausted=_run("sleep 100"))
    sandboxes = FakeSandboxFactory(tmp_path, delay_seconds=100)
    settings = make_settings(tmp_path, shutdown_grace_seconds=GRACE)
    manager = make_manager(settings, storage, llm, sandboxes)
    async with manager:
        ids = [await manager.create(None, NewConversation(initial_user_msg="go")) for _ in range(5)]
        for conversation_id in ids:
            await manager.start(conversation_id, None)
        await wait_until(
            lambda: all(c.pending_action is not None for c in manager.running_conversations())
        )
        began = time.monotonic()
        await manager.shutdown()
        # commands get half the grace period; the whole shutdown stays within it
        assert time.monotonic() - began < GRACE
        assert manager.running_ids() == []
    assert all(s.closed for s in sandboxes.created)
    for conversation_id in ids:
        assert (await storage.conversations.get(conversation_id)).desired_running


async def test_metadata_is_flushed_on_shutdown(tmp_path: Path) -> None:
    storage = MemoryStorage()
    llm = ScriptedLLM([_run("a")])
    settings = make_settings(tmp_path, metadata_flush_seconds=3600, shutdown_grace_seconds=0.5)
    manager = make_manager(settings, storage, llm, FakeSandboxFactory(tmp_path, delay_seconds=100))
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="go"))
        before = (await storage.conversations.get(conversation_id)).last_updated_at
        await manager.start(conversation_id, None)
        running = manager.running_conversations()[0]
        await wait_until(lambda: running.pending_action is not None)
        assert manager.metadata_sync.pending(conversation_id)  # the action's time is pending
    after = (await storage.conversations.get(conversation_id)).last_updated_at
    assert after > before
    assert manager.metadata_sync.pending(conversation_id) == {}


async def test_an_action_waiting_for_confirmation_does_not_hold_up_shutdown(
    tmp_path: Path,
) -> None:
    storage = MemoryStorage()
    await storage.settings.save_settings(None, UserSettings(confirmation_mode=True))
    llm = ScriptedLLM([_run("rm -rf build")])
    sandboxes = FakeSandboxFactory(tmp_path)
    manager = make_manager(
        make_settings(tmp_path, shutdown_grace_seconds=4), storage, llm, sandboxes
    )
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="clean"))
        await manager.start(conversation_id, None)
        await wait_until(
            lambda: manager.agent_state(conversation_id) == AgentState.AWAITING_USER_CONFIRMATION
        )
        began = time.monotonic()
        await manager.shutdown()
        assert time.monotonic() - began < 1.0  # nothing runs: no need to wait out the grace
    assert sandboxes.created[0].commands == []  # the unconfirmed command never ran
    assert (await storage.conversations.get(conversation_id)).desired_running
