"""The user's ``write`` action (OpenHands' file write): ``content`` replaces lines
``start`` up to ``end`` of a file (0-based, ``end`` excluded, -1 for the end of the file), so
the defaults (0, -1) write the whole file; a missing file is created with its directories.

Through the workspace's descriptor-relative walk, as the editor reads and writes
(``convo.runtime.workspace``): a path outside the workspace, or a symlink swapped in to
leave it, is refused. Mistakes come back as an error text; nothing here raises for them.
"""

from __future__ import annotations

import asyncio

from convo.agent.editor import MAX_FILE_BYTES
from convo.errors import PathOutsideWorkspace, SandboxError
from convo.runtime.base import Sandbox
from convo.runtime.workspace import Workspace

WRITE = "write"


class _Refused(Exception):
    pass


def _old_text(workspace: Workspace, target: str, path: str) -> str:
    kind = workspace.kind(target)
    if kind == "missing":
        return ""
    if kind != "file":
        raise _Refused(f"{path} is not a regular file")
    data = workspace.read_bytes(target, MAX_FILE_BYTES)
    if len(data) > MAX_FILE_BYTES:
        raise _Refused(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(f"{path} is not UTF-8 text") from None


def spliced(old: str, content: str, start: int, end: int) -> str:
    """``old`` with its lines ``start``..``end`` (end excluded, -1: to the end) replaced."""
    if start == 0 and end == -1:
        return content
    lines = old.splitlines(keepends=True)
    stop = len(lines) if end == -1 else end
    return "".join(lines[:start]) + content + "".join(lines[stop:])


def _write(workspace: Workspace, path: str, content: str, start: int, end: int) -> None:
    target = workspace.resolve(path)
    old = "" if (start, end) == (0, -1) and workspace.kind(target) != "dir" else None
    if old is None:
        old = _old_text(workspace, target, path)
    workspace.write(target, spliced(old, content, start, end).encode("utf-8"))


async def write_file(sandbox: Sandbox, path: str, content: str, start: int, end: int) -> str | None:
    """None once written; otherwise why it was not."""
    if start < 0 or end < -1 or (end != -1 and end < start):
        return f"Invalid line range {start}..{end}"
    try:
        await asyncio.to_thread(_write, sandbox.workspace, path, content, start, end)
    except PathOutsideWorkspace:
        return (
            f"The path {path} is outside the workspace {sandbox.workspace_path}; files can "
            "only be written inside it."
        )
    except _Refused as exc:
        return f"Cannot write {path}: {exc}."
    except (SandboxError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"Cannot write {path}: {reason}."
    return None
