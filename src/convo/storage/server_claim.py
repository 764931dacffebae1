"""One server per database: a claim held for the server's whole life.

SQLite: an ``flock`` on a file beside the database (released by the kernel when the holder
exits, kill -9 included). PostgreSQL: a session-level advisory lock on a connection of its
own (not one of the pool's), released when that connection closes, which PostgreSQL also does
when the holder dies. Cluster nodes (``shared``) hold the same lock in shared mode: any number
of them share a database, and neither a single server joins them nor they a single server.
The holder names itself (pid, host, start time) in the lock file or in its connection's
``application_name``, so a refused server can say which one is in the way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from convo.errors import AnotherServerRunning
from convo.host_lock import HostLock

# Any constant works; it only has to be the same in every convo process of one database
# (and differ from the migration lock's key).
_SERVER_LOCK_KEY = 0x636F6E7673  # "convs"
_HIGH, _LOW = _SERVER_LOCK_KEY >> 32, _SERVER_LOCK_KEY & 0xFFFFFFFF


class DatabaseClaim(Protocol):
    async def release(self) -> None: ...


class _FileClaim:
    def __init__(self, lock: HostLock) -> None:
        self._lock = lock

    async def release(self) -> None:
        self._lock.release()


class _AdvisoryClaim:
    def __init__(self, engine: AsyncEngine, conn: AsyncConnection) -> None:
        self._engine = engine
        self._conn = conn

    async def release(self) -> None:
        try:
            await self._conn.close()
        finally:
            await self._engine.dispose()


class _NoClaim:
    async def release(self) -> None:
        return None


async def claim_database(engine: AsyncEngine, holder: str, shared: bool = False) -> DatabaseClaim:
    """Claim ``engine``'s database for this server (``shared``: for this cluster node) or raise
    :class:`AnotherServerRunning`."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            return _NoClaim()
        lock = HostLock(Path(database + ".server-lock"), f"the SQLite database {database}")
        lock.claim(holder)
        return _FileClaim(lock)
    return await _claim_postgresql(engine, holder, shared)


async def _claim_postgresql(engine: AsyncEngine, holder: str, shared: bool) -> DatabaseClaim:
    own = create_async_engine(engine.url, poolclass=NullPool)
    conn = await own.connect()
    try:
        await conn.execute(
            text("SELECT set_config('application_name', :name, false)"),
            {"name": f"convo {holder}"[:63]},
        )
        function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        got = (
            await conn.execute(text(f"SELECT {function}(:key)"), {"key": _SERVER_LOCK_KEY})
        ).scalar_one()
        if not got:
            other = await _holder(conn)
            fix = (
                "a single server (no CONVO_REDIS_URL) holds it: stop it before starting "
                "cluster nodes on it"
                if shared
                else "stop it first, point this one at its own CONVO_DATABASE_URL, or set "
                "CONVO_REDIS_URL to join the cluster using it"
            )
            raise AnotherServerRunning(
                f"Another convo server ({other}) is using the PostgreSQL database "
                f"{url_without_password(engine)}; {fix}"
            )
        await conn.commit()  # the session-level lock outlives the transaction; nothing idles in one
    except BaseException:
        await conn.close()
        await own.dispose()
        raise
    return _AdvisoryClaim(own, conn)


async def _holder(conn: AsyncConnection) -> str:
    row = (
        await conn.execute(
            text(
                "SELECT a.application_name, host(a.client_addr) FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.classid = :high AND l.objid = :low AND l.objsubid = 1"
            ),
            {"high": _HIGH, "low": _LOW},
        )
    ).first()
    if row is None:
        return "unknown"
    name = str(row[0] or "").removeprefix("convo ").strip() or "unnamed"
    return f"{name}, connected from {row[1]}" if row[1] else name


def url_without_password(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=True)
