"""Shell process groups left behind by a server that was killed, found and killed at start-up.

A sandbox's shell leads its own process group (and session), so a ``kill -9`` of the server
does not take it along: an idle shell exits by itself when its stdin pipe closes, but a
command still running, or anything it started in the background, would stay. While a loop
runs, its shell's pid and start time are kept in ``<data dir>/run/<conversation id>.pid``;
the file is removed when the sandbox is closed. On start-up every file still there names a
group that nobody owns any more: its processes are killed (SIGKILL) and the file removed.

The start time (from ``/proc``) guards against a recycled pid: only the recorded shell, or
processes of its session started after it, are killed. Without ``/proc`` nothing is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger(__name__)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when it does not exist."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def session_members(session_id: int, not_before: int) -> list[int]:
    """Live processes of the session started at ``not_before`` ticks or later."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None or fields[0] == "Z":
            continue
        if int(fields[3]) == session_id and int(fields[19]) >= not_before:
            members.append(int(entry))
    return members


class ProcessRegistry:
    """Pid files of the shells this server runs; ``directory`` None keeps none."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory

    def _file(self, conversation_id: str) -> Path | None:
        return None if self._directory is None else self._directory / f"{conversation_id}.pid"

    def register(self, conversation_id: str, pid: int | None) -> None:
        path = self._file(conversation_id)
        started = start_time(pid) if pid is not None else None
        if path is None or pid is None or started is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{pid} {started}\n")
        except OSError:
            logger.exception("could not record the shell of %s", conversation_id)

    def unregister(self, conversation_id: str) -> None:
        path = self._file(conversation_id)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def kill_leftovers(self) -> list[int]:
        """Kill the processes of every shell group still on file; returns their pids."""
        if self._directory is None or not self._directory.is_dir():
            return []
        killed: list[int] = []
        for path in sorted(self._directory.glob("*.pid")):
            try:
                pid_text, started_text = path.read_text().split()
                pid, started = int(pid_text), int(started_text)
            except (OSError, ValueError):
                pid, started = 0, 0
            if pid > 1:
                killed.extend(self._kill_session(pid, started))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if killed:
            logger.warning("killed %d process(es) a previous server left behind", len(killed))
        return killed

    @staticmethod
    def _kill_session(pid: int, started: int) -> list[int]:
        leader_started = start_time(pid)
        if leader_started is not None and leader_started != started:
            return []  # the pid was recycled: that session is someone else's
        try:
            members = session_members(pid, started)
        except OSError:  # no /proc
            return []
        for member in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member, signal.SIGKILL)
        return members
