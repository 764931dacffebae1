"""What every SQL store shares: error translation, cancellation-proof calls, the write gate.

Every SQLAlchemy or driver error is translated into StorageError here.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convo.errors import StorageError, StorageFull, StorageUnavailable
from convo.storage.engine import is_sqlite

# PostgreSQL SQLSTATE classes of a database that is away or overloaded, not of a bad request:
# 08 connection exception, 53 insufficient resources, 57 operator intervention (including
# 57014, a statement cancelled by statement_timeout), 40 transaction rollback (deadlock).
_TRANSIENT_SQLSTATES = ("08", "53", "57", "40")
_DISK_FULL_SQLSTATE = "53100"
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error")


def _classify(exc: DBAPIError) -> type[StorageError]:
    """Which StorageError a driver error becomes: full disk, transient, or anything else."""
    orig = exc.orig
    sqlstate = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    text = str(orig).lower()
    if sqlstate == _DISK_FULL_SQLSTATE or "disk is full" in text or "no space left" in text:
        return StorageFull
    if exc.connection_invalidated or sqlstate.startswith(_TRANSIENT_SQLSTATES):
        return StorageUnavailable
    if any(marker in text for marker in _SQLITE_TRANSIENT):
        return StorageUnavailable
    if isinstance(getattr(orig, "__cause__", None), OSError):
        return StorageUnavailable
    return StorageError


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise database and driver errors as StorageError: StorageFull for a full disk,
    StorageUnavailable for a database that cannot be reached or did not answer in time
    (connection refused or lost, a timeout, a full pool), StorageError otherwise.

    The message names the driver's error, not the statement (whose parameters may hold
    secrets; engines are also built with ``hide_parameters``).
    """
    try:
        yield
    except IntegrityError as exc:
        raise StorageError(f"{action}: constraint violated ({exc.orig})") from exc
    except DBAPIError as exc:
        raise _classify(exc)(f"{action} failed: {exc.orig!r}") from exc
    except PoolTimeout as exc:
        raise StorageUnavailable(f"{action} failed: no database connection free") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"{action} failed: {type(exc).__name__}") from exc
    except OSError as exc:  # the database cannot be reached, or did not answer in time
        kind = StorageFull if exc.errno == errno.ENOSPC else StorageUnavailable
        raise kind(f"{action} failed: {exc!r}") from exc


_P = ParamSpec("_P")
_T = TypeVar("_T")


def completes_when_cancelled(
    method: Callable[_P, Coroutine[Any, Any, _T]],
) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """A write (or read), once begun, runs to its end even if the caller is cancelled.

    Cancelling a task in the middle of a transaction would leave it open on its connection
    (on SQLite, holding the write lock until the busy timeout fails every other writer). The
    caller still sees its CancelledError; the write commits or rolls back in the background.
    Reads are shielded too: a read cancelled mid-way (a loop stopped by a delete while it
    loads its history) left its aiosqlite connection unreturned, for the garbage collector.
    """

    @wraps(method)
    async def shielded(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await asyncio.shield(method(*args, **kwargs))

    return shielded


class WriteGate:
    """Where write transactions begin.

    SQLite takes one writer at a time; writers in this process queue on an asyncio lock
    instead of in SQLite's busy handler, which fails them after its timeout under load.
    PostgreSQL takes concurrent writers and gets no lock.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock() if is_sqlite(engine) else None

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        if self._lock is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._lock, self._engine.begin() as conn:
            yield conn


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The engine for reads: autocommit on PostgreSQL, so that no connection ever sits idle
    in a transaction between a read and its return to the pool. SQLite's driver begins a
    transaction only before a write, so its reads need no such setting, which costs two
    round trips to the connection's thread per read (set on checkout, reset on return:
    about a third of a read's CPU time)."""
    if is_sqlite(engine):
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")
