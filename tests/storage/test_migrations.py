from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from convo.domain.conversation import ConversationMetadata
from convo.errors import StorageError
from convo.storage import open_storage
from convo.storage.engine import make_engine
from convo.storage.schema import metadata
from convo.storage.sql import SqlStorage


def _schema_diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_migrate_twice_keeps_data(sql_url: str) -> None:
    storage = open_storage(sql_url)
    try:
        await storage.migrate()
        await storage.conversations.create(ConversationMetadata(conversation_id="c1"))
        await storage.migrate()
        assert (await storage.conversations.get("c1")).conversation_id == "c1"
    finally:
        await storage.aclose()


async def test_migrations_build_exactly_the_declared_schema(sql_storage: SqlStorage) -> None:
    async with sql_storage.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"conversations", "events", "user_settings", "user_secrets"} <= tables


async def test_sqlite_connections_get_the_pragmas(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "convo.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            values = {
                pragma: (await conn.exec_driver_sql(f"PRAGMA {pragma}")).scalar()
                for pragma in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        await engine.dispose()
    assert db.parent.is_dir()
    assert values == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
    }


@pytest.mark.parametrize("url", ["mysql+aiomysql://x/y", "sqlite:///sync.db", "not a url"])
def test_unsupported_urls_are_storage_errors(url: str) -> None:
    with pytest.raises(StorageError):
        make_engine(url)


async def test_unreachable_database_is_a_storage_error() -> None:
    storage = open_storage("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(StorageError):
            await storage.migrate()
    finally:
        await storage.aclose()
