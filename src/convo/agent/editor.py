"""The ``str_replace_editor`` tool of OpenHands: view, create, str_replace, insert, undo_edit.

Files are read and written on the host through ``Sandbox.host_path``. The path is
re-walked one component at a time with ``O_NOFOLLOW`` below the workspace root, so a
symlink the agent swaps in between the check and the write cannot redirect the editor
(which runs unconfined, even for a bubblewrap sandbox) outside the workspace.
User mistakes come back as ``success=False`` results; nothing here raises for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from convo.errors import PathOutsideWorkspace, SandboxError
from convo.runtime.base import Sandbox

SNIPPET_LINES = 4
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_HISTORY = 10
CLIPPED = (
    "<response clipped><NOTE>To save on context only part of this file has been shown to "
    "you. Search inside the file with `grep -n` to find the line numbers you need, then "
    "view them with view_range.</NOTE>"
)


@dataclass(frozen=True)
class EditorResult:
    content: str
    success: bool
    kind: Literal["read", "edit"]
    old_content: str | None = None
    new_content: str | None = None
    diff: str = ""


class ToolError(Exception):
    """A user mistake, reported as a failed result."""


def _inherit_owner(parent: int, fd: int) -> None:
    """Give a new file or directory its parent's owner (as root: so that a sandbox running
    as another uid can change what the editor created)."""
    if os.geteuid() == 0:
        info = os.fstat(parent)
        os.fchown(fd, info.st_uid, info.st_gid)


def _numbered(text: str, start: int = 1) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(text.split("\n"), start))


class _Files:
    """Blocking, symlink-safe file access below ``root`` (call through a thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _parent_fd(self, target: Path, *, create: bool) -> tuple[int, str]:
        parts = target.relative_to(self.root).parts
        if not parts:
            raise ToolError("The workspace root is a directory, not a file.")
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts[:-1]:
                made = False
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                        made = True
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                if made:
                    _inherit_owner(fd, child)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def _open(self, target: Path, flags: int, *, create: bool = False) -> int:
        parent, name = self._parent_fd(target, create=create)
        try:
            return os.open(name, flags | os.O_NOFOLLOW, 0o644, dir_fd=parent)
        finally:
            os.close(parent)

    def kind(self, target: Path) -> str:
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            return "missing"
        return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"

    def read(self, target: Path) -> str:
        fd = self._open(target, os.O_RDONLY)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ToolError(f"The file is larger than {MAX_FILE_BYTES} bytes; use the shell.")
        if b"\0" in data[:8192]:
            raise ToolError("The file looks binary; the editor only handles text files.")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(f"The file is not valid UTF-8 ({exc.reason}).") from exc

    def write(self, target: Path, text: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with os.fdopen(self._open(target, flags, create=True), "wb") as handle:
            handle.write(text.encode("utf-8"))

    def create(self, target: Path, text: str) -> None:
        parent, name = self._parent_fd(target, create=True)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, 0o644, dir_fd=parent)
            try:
                _inherit_owner(parent, fd)
            except OSError:
                os.close(fd)
                raise
        finally:
            os.close(parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))

    def remove(self, target: Path) -> None:
        parent, name = self._parent_fd(target, create=False)
        try:
            os.unlink(name, dir_fd=parent)
        finally:
            os.close(parent)

    def listing(self, target: Path, shown: str, depth: int = 2) -> list[str]:
        lines: list[str] = [shown]
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        self._walk(fd, shown.rstrip("/"), depth, lines)
        return lines

    def _walk(self, fd: int, prefix: str, depth: int, lines: list[str]) -> None:
        try:
            entries = sorted(os.scandir(fd), key=lambda e: e.name)
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                lines.append(f"{prefix}/{entry.name}{'/' if is_dir else ''}")
                if is_dir and depth > 1:
                    try:
                        child = os.open(
                            entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd
                        )
                    except OSError:
                        continue
                    self._walk(child, f"{prefix}/{entry.name}", depth - 1, lines)
        finally:
            os.close(fd)


class FileEditor:
    """One conversation's file editor; keeps a per-file undo history in memory."""

    def __init__(self, sandbox: Sandbox, *, max_output_chars: int = 16_000) -> None:
        self._sandbox = sandbox
        self._max_chars = max_output_chars
        self._history: dict[Path, list[str | None]] = {}

    async def __call__(
        self,
        *,
        command: str,
        path: str,
        file_text: str | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        insert_line: int | None = None,
        view_range: list[int] | None = None,
    ) -> EditorResult:
        kind: Literal["read", "edit"] = "read" if command == "view" else "edit"
        try:
            target = self._sandbox.host_path(path)
            files = _Files(self._sandbox.host_path(self._sandbox.workspace_path))
        except PathOutsideWorkspace:
            message = (
                f"The path {path} is outside the workspace {self._sandbox.workspace_path}; "
                "the editor can only access files inside it."
            )
            return EditorResult(message, False, kind)
        except SandboxError as exc:
            return EditorResult(f"Invalid path {path}: {exc}", False, kind)
        try:
            if command == "view":
                return await self._run(files, self._view, target, path, view_range)
            if command == "create":
                if file_text is None:
                    raise ToolError("Parameter `file_text` is required for command: create.")
                return await self._run(files, self._create, target, path, file_text)
            if command == "str_replace":
                if old_str is None:
                    raise ToolError("Parameter `old_str` is required for command: str_replace.")
                return await self._run(files, self._replace, target, path, old_str, new_str or "")
            if command == "insert":
                if insert_line is None or new_str is None:
                    raise ToolError(
                        "Parameters `insert_line` and `new_str` are required for insert."
                    )
                return await self._run(files, self._insert, target, path, insert_line, new_str)
            if command == "undo_edit":
                return await self._run(files, self._undo, target, path)
            raise ToolError(
                f"Unrecognized command {command!r}. The allowed commands are: view, create, "
                "str_replace, insert, undo_edit."
            )
        except ToolError as exc:
            return EditorResult(str(exc), False, kind)

    async def _run(
        self, files: _Files, action: Callable[..., EditorResult], *args: object
    ) -> EditorResult:
        try:
            return await asyncio.to_thread(action, files, *args)
        except ToolError:
            raise
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno == errno.ELOOP:  # a symlink appeared where a real path was checked
                reason = "a path component is a symlink"
            raise ToolError(f"Cannot access {args[1]}: {reason}.") from exc

    # --- commands (run in a worker thread) ---------------------------------------------
    def _view(
        self, files: _Files, target: Path, path: str, view_range: list[int] | None
    ) -> EditorResult:
        kind = files.kind(target)
        if kind == "missing":
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.")
        if kind == "dir":
            if view_range:
                raise ToolError("The `view_range` parameter is not allowed for a directory.")
            listing = "\n".join(files.listing(target, path))
            header = (
                f"Here's the files and directories up to 2 levels deep in {path}, "
                "excluding hidden items:\n"
            )
            return EditorResult(header + self._clip(listing), True, "read")
        text = files.read(target)
        lines = text.split("\n")
        start, end = 1, len(lines)
        if view_range:
            if len(view_range) != 2 or not 1 <= view_range[0] <= len(lines):
                raise ToolError(
                    f"Invalid `view_range` {view_range}: it should be [start, end] with "
                    f"start within [1, {len(lines)}]."
                )
            start = view_range[0]
            end = len(lines) if view_range[1] == -1 else view_range[1]
            if not start <= end <= len(lines):
                raise ToolError(
                    f"Invalid `view_range` {view_range}: end must be -1 or within "
                    f"[{start}, {len(lines)}]."
                )
        body = _numbered("\n".join(lines[start - 1 : end]), start)
        header = f"Here's the result of running `cat -n` on {path}:\n"
        return EditorResult(header + self._clip(body) + "\n", True, "read")

    def _create(self, files: _Files, target: Path, path: str, text: str) -> EditorResult:
        if files.kind(target) != "missing":
            raise ToolError(
                f"File already exists at: {path}. Cannot overwrite files using command "
                "`create`; use str_replace, or remove the file first."
            )
        files.create(target, text)
        self._remember(target, None)
        return EditorResult(
            f"File created successfully at: {path}",
            True,
            "edit",
            None,
            text,
            self._diff(path, "", text),
        )

    def _replace(self, files: _Files, target: Path, path: str, old: str, new: str) -> EditorResult:
        text = self._read_existing(files, target, path)
        count = text.count(old) if old else 0
        if count == 0:
            raise ToolError(
                f"No replacement was performed, old_str `{old}` did not appear verbatim in {path}."
            )
        if count > 1:
            starts, at = [], text.find(old)
            while at != -1:
                starts.append(text.count("\n", 0, at) + 1)
                at = text.find(old, at + 1)
            raise ToolError(
                f"No replacement was performed. Multiple occurrences ({count}) of old_str "
                f"`{old}` in lines {starts}. Please ensure it is unique."
            )
        if old == new:
            raise ToolError("No replacement was performed: `new_str` is the same as `old_str`.")
        first = text.count("\n", 0, text.find(old)) + 1
        updated = text.replace(old, new, 1)
        return self._save(files, target, path, text, updated, first, new.count("\n") + 1)

    def _insert(self, files: _Files, target: Path, path: str, line: int, new: str) -> EditorResult:
        text = self._read_existing(files, target, path)
        lines = text.split("\n")
        if not 0 <= line <= len(lines):
            raise ToolError(f"Invalid `insert_line` {line}: it should be within [0, {len(lines)}].")
        updated = "\n".join([*lines[:line], *new.split("\n"), *lines[line:]])
        return self._save(files, target, path, text, updated, line + 1, new.count("\n") + 1)

    def _undo(self, files: _Files, target: Path, path: str) -> EditorResult:
        history = self._history.get(target)
        if not history:
            raise ToolError(f"No edit history found for {path}.")
        current = files.read(target) if files.kind(target) == "file" else ""
        previous = history.pop()
        if previous is None:
            files.remove(target)
            message = f"Last edit to {path} undone successfully: the created file was removed."
            return EditorResult(message, True, "edit", current, None, self._diff(path, current, ""))
        files.write(target, previous)
        message = f"Last edit to {path} undone successfully. {self._snippet(previous, path, 1, 0)}"
        diff = self._diff(path, current, previous)
        return EditorResult(message, True, "edit", current, previous, diff)

    # --- helpers -----------------------------------------------------------------------
    def _read_existing(self, files: _Files, target: Path, path: str) -> str:
        kind = files.kind(target)
        if kind == "missing":
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.")
        if kind != "file":
            raise ToolError(f"The path {path} is not a regular file; only files can be edited.")
        return files.read(target)

    def _save(
        self, files: _Files, target: Path, path: str, old: str, new: str, first: int, count: int
    ) -> EditorResult:
        files.write(target, new)
        self._remember(target, old)
        message = (
            f"The file {path} has been edited. {self._snippet(new, path, first, count)}"
            "Review the changes and make sure they are as expected. Edit the file again if "
            "necessary."
        )
        return EditorResult(message, True, "edit", old, new, self._diff(path, old, new))

    def _snippet(self, text: str, path: str, first: int, count: int) -> str:
        lines = text.split("\n")
        start = max(1, first - SNIPPET_LINES)
        end = min(len(lines), first + count - 1 + SNIPPET_LINES) if count else len(lines)
        body = _numbered("\n".join(lines[start - 1 : end]), start)
        return (
            f"Here's the result of running `cat -n` on a snippet of {path}:\n{self._clip(body)}\n"
        )

    def _remember(self, target: Path, previous: str | None) -> None:
        history = self._history.setdefault(target, [])
        history.append(previous)
        del history[:-MAX_HISTORY]

    def _clip(self, text: str) -> str:
        return text if len(text) <= self._max_chars else text[: self._max_chars] + CLIPPED

    @staticmethod
    def _diff(path: str, old: str, new: str) -> str:
        return "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), path, path
            )
        )
