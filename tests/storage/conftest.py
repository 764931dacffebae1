"""Storage fixtures: every test runs on SQLite (a file in tmp_path), on PostgreSQL (a fresh
database per test, dropped afterwards) and, for the ``storage`` fixture, in memory.

PostgreSQL being unreachable is an error, not a skip: CI guarantees it is up.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from convo.storage import open_storage
from convo.storage.base import Storage
from convo.storage.memory import MemoryStorage
from convo.storage.sql import SqlStorage


@asynccontextmanager
async def fresh_postgres_database(base_url: str) -> AsyncIterator[str]:
    """Create a uniquely named database next to ``base_url``'s; yield its URL; drop it."""
    name = f"convo_test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


@asynccontextmanager
async def database_url(backend: str, tmp_path: Path, postgres_url: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'convo.db'}"
    else:
        async with fresh_postgres_database(postgres_url) as url:
            yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database; nothing is migrated."""
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    async with database_url(request.param, tmp_path, postgres_url) as url:
        yield url


@pytest.fixture
async def sql_storage(sql_url: str) -> AsyncIterator[SqlStorage]:
    storage = open_storage(sql_url)
    try:
        await storage.migrate()
        yield storage
    finally:
        await storage.aclose()


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    async with database_url(request.param, tmp_path, postgres_url) as url:
        sql = open_storage(url)
        try:
            await sql.migrate()
            yield sql
        finally:
            await sql.aclose()
