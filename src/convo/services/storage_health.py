"""What convo knows about its storage right now: up, unreachable, or out of disk space.

``StorageHealth`` is told of every storage failure and success that matters (the loops'
writes, API requests, probes). It logs one line when an outage begins and one when it ends,
not one per failed request, and answers ``/health`` and the ``Retry-After`` of a 503.

``DiskReserve`` keeps a placeholder file of a few MB in the data dir. When the disk fills
up, it is deleted: the space it frees lets each conversation store one event telling its
user that the disk is full. It is created again once the disk has room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from convo.errors import StorageError, StorageFull, StorageUnavailable
from convo.storage.base import Storage

logger = logging.getLogger(__name__)

_MB = 1024 * 1024
RESERVE_NAME = "disk-reserve"


class StorageHealth:
    """The current storage outage, if any."""

    def __init__(self) -> None:
        self._down_since: float | None = None
        self._reason = ""
        self._full = False
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    @property
    def full(self) -> bool:
        """The outage is a full disk."""
        return self.down and self._full

    @property
    def reason(self) -> str:
        return self._reason

    def down_for(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    def retry_after(self) -> int:
        """Seconds a client should wait before trying again (for ``Retry-After``)."""
        return 5 if self.down_for() < 30 else 15

    def failed(self, exc: StorageError) -> None:
        """A storage operation failed; logs once per outage."""
        self._failures += 1
        self._full = self._full or isinstance(exc, StorageFull)
        self._reason = str(exc)
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.error("storage unavailable: %s (logged once until it is back)", exc)

    def recovered(self) -> None:
        """A storage operation succeeded; ends the outage, if any."""
        if self._down_since is None:
            return
        logger.warning(
            "storage is back after %.1f s (%d failed operations)",
            self.down_for(),
            self._failures,
        )
        self._down_since, self._reason, self._full, self._failures = None, "", False, 0


class DiskReserve:
    """A placeholder file of ``size_bytes`` in ``directory``, released when the disk is full."""

    def __init__(self, directory: Path, size_bytes: int) -> None:
        self.path = directory / RESERVE_NAME
        self.size = size_bytes

    def free_bytes(self) -> int:
        """Free space on the data dir's disk (of its nearest existing ancestor)."""
        directory = self.path.parent
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        try:
            return shutil.disk_usage(directory).free
        except OSError:
            return 0

    def has_room(self) -> bool:
        """Whether the disk has room again: the reserve fits, with as much again to spare
        (the space a released reserve freed does not count as room)."""
        missing = 0 if self.path.exists() else self.size
        return self.free_bytes() >= missing + max(self.size, _MB)

    async def ensure(self) -> bool:
        """Create the placeholder if it is missing and fits; True if it exists now."""
        if self.size <= 0:
            return False
        return await asyncio.to_thread(self._ensure)

    def _ensure(self) -> bool:
        if self.path.exists():
            return True
        if not self.path.parent.is_dir():  # no data dir (storage in memory): nothing to keep
            return False
        if self.free_bytes() < self.size + _MB:
            return False
        partial = self.path.with_suffix(".partial")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
            os.replace(partial, self.path)
        except OSError as exc:
            logger.warning("could not reserve %d MB of disk: %s", self.size // _MB, exc)
            with contextlib.suppress(OSError):
                partial.unlink()
            return False
        return True

    async def release(self) -> bool:
        """Delete the placeholder; True if it existed."""
        try:
            await asyncio.to_thread(self.path.unlink)
        except FileNotFoundError:
            return False
        logger.warning("the disk is full: released %d MB kept in reserve", self.size // _MB)
        return True


async def open_on_full_disk(data_dir: Path, reserve_mb: int) -> None:
    """At start-up: when the data dir's disk has no room, release the reserve, so that the
    database can open and each conversation can be told why it does not resume."""
    reserve = DiskReserve(data_dir, reserve_mb * _MB)
    if reserve.path.exists() and not reserve.has_room():
        await reserve.release()


async def probe(
    storage: Storage, health: StorageHealth, reserve: DiskReserve, answer_within: float
) -> dict[str, str]:
    """The state of the database and of the data dir's disk, for ``/health``: each "ok" or
    what is wrong. A database that does not answer within ``answer_within`` s is down."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(answer_within):
            await storage.ping()
    except TimeoutError:
        checks["database"] = f"down: no answer within {answer_within:g} s"
        health.failed(StorageUnavailable(checks["database"]))
    except StorageError as exc:
        checks["database"] = f"down: {exc}"
        health.failed(exc)
    else:
        checks["database"] = "ok"
    free = reserve.free_bytes()
    if free < _MB or (health.full and not reserve.has_room()):
        checks["disk"] = f"full: {free // 1024} KB free in the data dir"
    else:
        checks["disk"] = "ok"
        if checks["database"] == "ok":
            health.recovered()
    return checks
