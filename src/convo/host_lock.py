"""A file lock that one process holds for its whole life, naming itself to whoever is refused.

Used to keep a second server off a data dir (and off an SQLite database) that a running server
owns: ``flock`` is released by the kernel when the holder exits, however it exits (kill -9
included), so a lock file left behind by a dead server never blocks the next one, and a live
one always does. The holder writes a one-line description of itself into the file, which the
refused process quotes in its error.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from convo.errors import AnotherServerRunning


def describe_this_process() -> str:
    """``pid 1234 on host, since 12:00:00 UTC``: how a refused server names this one."""
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"pid {os.getpid()} on {socket.gethostname()}, since {since}"


class HostLock:
    """An exclusive ``flock`` on ``path``, taken with :meth:`claim`, dropped by :meth:`release`
    (or by the process's exit)."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self._what = what
        self._fd: int | None = None

    def claim(self, holder: str) -> None:
        """Take the lock or raise :class:`AnotherServerRunning` naming its holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 500, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise AnotherServerRunning(
                f"Another convo server ({other}) is using {self._what}; stop it first, "
                "or give this one its own CONVO_DATA_DIR and CONVO_DATABASE_URL"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None
