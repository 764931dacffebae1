"""Engines and schema upgrades: SQLite (aiosqlite, the default) or PostgreSQL (asyncpg).

Dialect quirks of connecting live here; ``sql.py`` gets a ready engine.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from convo.errors import StorageError
from convo.storage.at_rest import PRIVATE_DIR_MODE, prepare_database_file

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",  # a replaced row (a secret sealed late) leaves no old bytes
)


@dataclass(frozen=True)
class EngineOptions:
    """Pool and timeouts (``CONVO_DB_*``). A stalled database fails a statement after
    ``statement_timeout_seconds`` instead of hanging its caller.

    PostgreSQL: ``pool_size`` + ``max_overflow`` connections at most, a wait of at most
    ``pool_timeout_seconds`` for one; the server cancels a statement running longer than
    the statement timeout and ends a session idle in a transaction for longer than that; the
    client gives up on a connection attempt after ``connect_timeout_seconds`` and on any
    command (also over a network that drops packets) a second after the statement timeout.
    SQLite: the statement timeout is its busy timeout (waiting for another process's lock).
    """

    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout_seconds: float = 10.0
    statement_timeout_seconds: float = 5.0
    connect_timeout_seconds: float = 5.0


# Any constant works; it only has to be the same in every convo process of one database.
_MIGRATION_LOCK_KEY = 0x636F6E766F  # "convo"

_SUPPORTED_DRIVERS = {"sqlite+aiosqlite", "postgresql+asyncpg"}


def make_engine(url: str, options: EngineOptions | None = None) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://...``.

    For a SQLite file the parent directory is created, the file is made private (0600) and
    every connection gets WAL mode, ``synchronous=NORMAL``, the busy timeout, foreign keys
    and ``secure_delete`` on.
    """
    options = options or EngineOptions()
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"Invalid database URL: {exc}") from exc
    if parsed.drivername not in _SUPPORTED_DRIVERS:
        raise StorageError(
            f"Unsupported database driver {parsed.drivername!r}; "
            "use sqlite+aiosqlite:///path or postgresql+asyncpg://..."
        )
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, options)
    return _postgres_engine(url, options)


def _postgres_engine(url: str, options: EngineOptions) -> AsyncEngine:
    statement_ms = str(round(options.statement_timeout_seconds * 1000))
    return create_async_engine(
        url,
        pool_pre_ping=True,
        hide_parameters=True,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_timeout=options.pool_timeout_seconds,
        connect_args={
            "timeout": options.connect_timeout_seconds,
            "command_timeout": options.statement_timeout_seconds + 1.0,
            "server_settings": {
                "statement_timeout": statement_ms,
                "idle_in_transaction_session_timeout": statement_ms,
            },
        },
    )


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_engine(url: str, database: str | None, options: EngineOptions) -> AsyncEngine:
    in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
    if not in_memory and database is not None:
        file = Path(database).expanduser()
        file.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        prepare_database_file(file)  # 0600 before SQLite creates it
    engine = create_async_engine(url, hide_parameters=True)
    busy_ms = round(options.statement_timeout_seconds * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in (*SQLITE_PRAGMAS, f"PRAGMA busy_timeout={busy_ms}"):
                cursor.execute(pragma)
        finally:
            cursor.close()

    return engine


# --- migrations --------------------------------------------------------------------------
def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the bundled migrations; no ini file needed."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade_to_head(connection: Connection) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(alembic_config(connection), "head")
    except CommandError as exc:  # e.g. the database is at a revision we do not know
        raise StorageError(f"Migrating the database failed: {exc}") from exc


_REVISION = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*[\"']([^\"']+)[\"']", re.M)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration's id, read from the version files without importing Alembic;
    None if they do not form one line (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for name, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (revisions if name == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def _at_head(engine: AsyncEngine) -> bool:
    """Whether the database records the newest migration (a single cheap query)."""
    head = head_revision()
    if head is None:
        return False
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:  # no version table yet: a new database
        return False
    return [row[0] for row in rows] == [head]


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Apply every pending migration in one transaction; a no-op when up to date.

    A database already at the newest revision costs one query: Alembic (slow to import and
    to load its scripts) runs only when there is something to do. On PostgreSQL a
    transaction-scoped advisory lock keeps concurrently starting servers from migrating at
    the same time.
    """
    if await _at_head(engine):
        logger.debug("Database schema is at head")
        return
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        await conn.run_sync(_upgrade_to_head)
    logger.debug("Database schema is at head")
