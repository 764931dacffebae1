"""Each command's exit status, recorded by the shell itself the moment the command ends.

The shell writes ``<token> <status>`` to ``EXIT_RECORD`` in the workspace's top folder after
each command, before the end marker that tells the server the command is done. A server
killed before it read that marker (or before it journaled the result) finds there, when it
resumes the conversation, that the command had finished and with which status: the action
journal compares the record with what it held when the action was started. The agent may
write the file too; that misleads only its own conversation's resume, as the output of its
own commands could.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

EXIT_RECORD = ".convo-exit-status"
_RECORD_LIMIT = 256


def read_exit_record(workspace: Path) -> str:
    """The exit record in a workspace (host path), "" when there is none. Never follows a
    symlink, never blocks on a FIFO, reads at most a few hundred bytes of a regular file."""
    try:
        fd = os.open(workspace / EXIT_RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, _RECORD_LIMIT).decode("ascii", "replace").strip()
    except OSError:
        return ""
    finally:
        os.close(fd)


def exit_status_since(before: str, now: str) -> int | None:
    """The exit status recorded by a command that ended after the record read ``before``;
    None when no command ended since then (or the record is not one the shell wrote)."""
    if now == before:
        return None
    parts = now.split()
    if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{32}", parts[0]):
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None
