"""Idle loops nobody listens to are closed on the schedule; watched or working ones are not."""

from __future__ import annotations

from pathlib import Path

from convo.domain.conversation import AgentState, ConversationStatus
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.services.conversations import NewConversation
from convo.storage.memory import MemoryStorage
from tests.services.conftest import (
    FakeSandboxFactory,
    agent_states,
    make_manager,
    make_settings,
    wait_until,
)


async def test_idle_unwatched_loops_close_and_stay_closed(tmp_path: Path) -> None:
    storage = MemoryStorage()
    llm = ScriptedLLM(when_exhausted=tool_response("execute_bash", {"command": "sleep 100"}))
    settings = make_settings(tmp_path, idle_close_seconds=0.3, reconcile_interval_seconds=0.1)
    manager = make_manager(settings, storage, llm, FakeSandboxFactory(tmp_path, delay_seconds=100))
    async with manager:
        unwatched = await manager.create(None, NewConversation())
        watched = await manager.create(None, NewConversation())
        working = await manager.create(None, NewConversation(initial_user_msg="work"))
        listener = manager.event_log.bus.subscribe(watched)
        for conversation_id in (unwatched, watched, working):
            await manager.start(conversation_id, None)
        await wait_until(
            lambda: (
                manager.agent_state(unwatched) == AgentState.AWAITING_USER_INPUT
                and manager.agent_state(working) == AgentState.RUNNING
            )
        )

        await wait_until(lambda: manager.status(unwatched) is ConversationStatus.STOPPED)
        for _ in range(5):  # several more rounds: the others stay up, the closed one stays down
            await manager.supervisor.run_round()
        assert manager.status(watched) is ConversationStatus.RUNNING
        assert manager.status(working) is ConversationStatus.RUNNING
        assert manager.status(unwatched) is ConversationStatus.STOPPED
        assert agent_states(await storage.events.list(unwatched))[-1] == "stopped"
        assert not (await storage.conversations.get(unwatched)).desired_running
        listener.close()
