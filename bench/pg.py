"""Fresh PostgreSQL databases for benchmarks: created next to a base URL, dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


async def reachable(base_url: str) -> bool:
    engine = create_async_engine(base_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


class Databases:
    """Creates databases on demand (``await new()``) and drops them all on exit."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.names: list[str] = []
        self._engine = create_async_engine(
            base_url, isolation_level="AUTOCOMMIT", poolclass=NullPool
        )

    async def new(self) -> str:
        name = f"convo_bench_{uuid.uuid4().hex[:12]}"
        async with self._engine.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        async with self._engine.connect() as conn:
            for name in self.names:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self._engine.dispose()


@asynccontextmanager
async def databases(base_url: str) -> AsyncIterator[Databases]:
    pool = Databases(base_url)
    try:
        yield pool
    finally:
        await pool.drop_all()
