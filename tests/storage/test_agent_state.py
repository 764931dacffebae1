"""A conversation's stored agent state follows its agent_state_changed events."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from convo.domain.conversation import AgentState, ConversationMetadata
from convo.domain.events import EventSource, agent_state_changed, message_action
from convo.storage import open_storage
from convo.storage.base import Storage
from convo.storage.engine import alembic_config, make_engine


async def test_the_last_state_change_is_the_conversations_agent_state(storage: Storage) -> None:
    await storage.conversations.create(ConversationMetadata(conversation_id="c1"))
    await storage.conversations.create(ConversationMetadata(conversation_id="c2"))
    assert (await storage.conversations.get("c1")).agent_state is None

    await storage.events.append("c1", agent_state_changed(AgentState.RUNNING))
    await storage.events.append("c1", message_action("hi", EventSource.AGENT))
    assert (await storage.conversations.get("c1")).agent_state is AgentState.RUNNING

    await storage.events.append("c1", agent_state_changed(AgentState.AWAITING_USER_INPUT))
    loaded = await storage.conversations.get("c1")
    assert loaded.agent_state is AgentState.AWAITING_USER_INPUT
    page = await storage.conversations.search(None, limit=10)
    states = {m.conversation_id: m.agent_state for m in page.results}
    assert states == {"c1": AgentState.AWAITING_USER_INPUT, "c2": None}


async def test_a_second_release_database_upgrades_without_agent_states(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0002_providers_set"))
        await conn.execute(
            text(
                "INSERT INTO conversations (conversation_id, user_id, title, created_at,"
                " last_updated_at, pr_number, desired_running, next_event_id)"
                " VALUES ('old1', '', 'Old one', '2026-01-01 00:00:00', '2026-01-01 00:00:00',"
                " '[]', 0, 0)"
            )
        )
    await engine.dispose()

    storage = open_storage(url)
    try:
        await storage.migrate()
        assert (await storage.conversations.get("old1")).agent_state is None
        await storage.events.append("old1", agent_state_changed(AgentState.FINISHED))
        assert (await storage.conversations.get("old1")).agent_state is AgentState.FINISHED
    finally:
        await storage.aclose()
