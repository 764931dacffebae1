"""A database made by an earlier release upgrades in place and keeps its conversations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from convo.storage import open_storage
from convo.storage.engine import alembic_config, make_engine


async def test_a_first_release_database_upgrades_and_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001_initial"))
        await conn.execute(
            text(
                "INSERT INTO conversations (conversation_id, user_id, title, created_at,"
                " last_updated_at, pr_number, desired_running, next_event_id)"
                " VALUES ('old1', '', 'Old one', '2026-01-01 00:00:00', '2026-01-01 00:00:00',"
                " '[]', 1, 0)"
            )
        )
    await engine.dispose()

    storage = open_storage(url)
    try:
        await storage.migrate()
        loaded = await storage.conversations.get("old1")
        assert loaded.title == "Old one" and loaded.desired_running
        assert loaded.providers_set is None  # started before it was recorded: all tokens
    finally:
        await storage.aclose()
