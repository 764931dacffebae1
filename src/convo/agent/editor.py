"""The ``str_replace_editor`` tool of OpenHands: view, create, str_replace, insert, undo_edit.

Files are read and written on the host through ``Sandbox.workspace``: every access walks
from a descriptor of the workspace root one component at a time with ``O_NOFOLLOW``
(``convo.runtime.workspace``), so a symlink the agent swaps in while the editor works
cannot redirect it outside the workspace, and files it creates get the sandbox's owner.
User mistakes come back as ``success=False`` results; nothing here raises for them.
"""

from __future__ import annotations

import asyncio
import difflib
import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from convo.errors import PathOutsideWorkspace, SandboxError
from convo.runtime.base import Sandbox
from convo.runtime.workspace import Workspace

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


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP:  # the agent changed the path while the editor walked it
            return "the path changed while it was being accessed"
        return exc.strerror or str(exc)
    return str(exc)


def _numbered(text: str, start: int = 1) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(text.split("\n"), start))


class _Files:
    """Blocking file access for the editor (call through a thread): the workspace's
    descriptor-relative walk, with the editor's own limits and messages."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def kind(self, target: str) -> str:
        return self.workspace.kind(target)

    def read(self, target: str) -> str:
        data = self.workspace.read_bytes(target, MAX_FILE_BYTES)
        if len(data) > MAX_FILE_BYTES:
            raise ToolError(f"The file is larger than {MAX_FILE_BYTES} bytes; use the shell.")
        if b"\0" in data[:8192]:
            raise ToolError("The file looks binary; the editor only handles text files.")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(f"The file is not valid UTF-8 ({exc.reason}).") from exc

    def write(self, target: str, text: str) -> None:
        self.workspace.write(target, text.encode("utf-8"))

    def create(self, target: str, text: str) -> None:
        self.workspace.write(target, text.encode("utf-8"), exclusive=True)

    def remove(self, target: str) -> None:
        self.workspace.remove(target)

    def listing(self, target: str, shown: str, depth: int = 2) -> list[str]:
        base = shown.rstrip("/")
        entries = self.workspace.tree(target, depth)
        return [shown, *(f"{base}/{e.name}{'/' if e.is_dir else ''}" for e in entries)]


class FileEditor:
    """One conversation's file editor; keeps a per-file undo history in memory."""

    def __init__(self, sandbox: Sandbox, *, max_output_chars: int = 16_000) -> None:
        self._sandbox = sandbox
        self._max_chars = max_output_chars
        self._history: dict[str, list[str | None]] = {}

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
        files = _Files(self._sandbox.workspace)
        try:
            target = await asyncio.to_thread(files.workspace.resolve, path)
        except PathOutsideWorkspace:
            message = (
                f"The path {path} is outside the workspace {self._sandbox.workspace_path}; "
                "the editor can only access files inside it."
            )
            return EditorResult(message, False, kind)
        except (SandboxError, OSError) as exc:
            return EditorResult(f"Invalid path {path}: {_reason(exc)}", False, kind)
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
        except (OSError, PathOutsideWorkspace) as exc:
            raise ToolError(f"Cannot access {args[1]}: {_reason(exc)}.") from exc

    # --- commands (run in a worker thread) ---------------------------------------------
    def _view(
        self, files: _Files, target: str, path: str, view_range: list[int] | None
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

    def _create(self, files: _Files, target: str, path: str, text: str) -> EditorResult:
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

    def _replace(self, files: _Files, target: str, path: str, old: str, new: str) -> EditorResult:
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

    def _insert(self, files: _Files, target: str, path: str, line: int, new: str) -> EditorResult:
        text = self._read_existing(files, target, path)
        lines = text.split("\n")
        if not 0 <= line <= len(lines):
            raise ToolError(f"Invalid `insert_line` {line}: it should be within [0, {len(lines)}].")
        updated = "\n".join([*lines[:line], *new.split("\n"), *lines[line:]])
        return self._save(files, target, path, text, updated, line + 1, new.count("\n") + 1)

    def _undo(self, files: _Files, target: str, path: str) -> EditorResult:
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
    def _read_existing(self, files: _Files, target: str, path: str) -> str:
        kind = files.kind(target)
        if kind == "missing":
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.")
        if kind != "file":
            raise ToolError(f"The path {path} is not a regular file; only files can be edited.")
        return files.read(target)

    def _save(
        self, files: _Files, target: str, path: str, old: str, new: str, first: int, count: int
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

    def _remember(self, target: str, previous: str | None) -> None:
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
