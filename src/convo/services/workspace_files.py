"""A conversation's workspace on disk, as the file routes see it: list, read, zip, upload.

Every path a client names is resolved inside the workspace or refused: ``..``, absolute paths
elsewhere and symlinks pointing out all raise ``OutsideWorkspace``. The functions here do
blocking disk work; callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from convo.errors import ConvoError

AGENT_WORKSPACE = PurePosixPath("/workspace")  # how the agent names the workspace root
MAX_READ_BYTES = 5 * 1024 * 1024
HIDDEN_ENTRIES = frozenset({".git"})


class WorkspaceFileError(ConvoError):
    """A file request on a workspace cannot be carried out."""


class WorkspaceMissing(WorkspaceFileError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"The workspace of conversation {conversation_id} does not exist yet: start the "
            "conversation or upload a file first"
        )


class OutsideWorkspace(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"Path {path!r} is outside the workspace")


class FileMissing(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"File not found: {path}")


class NotAFile(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"Not a file: {path}")


class BinaryFile(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"Unable to open binary file: {path}")


class FileTooLarge(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"File too large to show: {path} (over {MAX_READ_BYTES} bytes)")


def existing_root(root: Path, conversation_id: str) -> Path:
    if not root.is_dir():
        raise WorkspaceMissing(conversation_id)
    return root.resolve()


def resolve_inside(root: Path, path: str) -> Path:
    """The host path of ``path`` (relative, or absolute under /workspace) inside ``root``."""
    named = PurePosixPath(path.replace("\\", "/"))
    if named.is_absolute():
        try:
            named = named.relative_to(AGENT_WORKSPACE)
        except ValueError:
            raise OutsideWorkspace(path) from None
    resolved_root = root.resolve()
    host = (resolved_root / named).resolve()
    if host != resolved_root and resolved_root not in host.parents:
        raise OutsideWorkspace(path)
    return host


def relative_name(root: Path, host: Path) -> str:
    return host.relative_to(root.resolve()).as_posix()


def list_entries(root: Path, path: str | None) -> list[str]:
    """Entries of a workspace directory: directories first (with a trailing ``/``), then
    files, each as its path relative to the workspace."""
    directory = resolve_inside(root, path) if path else root.resolve()
    if not directory.exists():
        raise FileMissing(path or ".")
    if not directory.is_dir():
        raise WorkspaceFileError(f"Not a directory: {path}")
    folders: list[str] = []
    files: list[str] = []
    for entry in directory.iterdir():
        if entry.name in HIDDEN_ENTRIES:
            continue
        name = relative_name(root, directory / entry.name)
        if entry.is_dir():
            folders.append(name + "/")
        else:
            files.append(name)
    return sorted(folders, key=str.lower) + sorted(files, key=str.lower)


def read_text(root: Path, path: str) -> str:
    host = resolve_inside(root, path)
    if not host.exists():
        raise FileMissing(path)
    if not host.is_file():
        raise NotAFile(path)
    if host.stat().st_size > MAX_READ_BYTES:
        raise FileTooLarge(path)
    data = host.read_bytes()
    if b"\x00" in data[:8192]:
        raise BinaryFile(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BinaryFile(path) from None


def zip_workspace(root: Path) -> Path:
    """A zip of the whole workspace in a temporary file; the caller deletes it."""
    resolved = root.resolve()
    handle, name = tempfile.mkstemp(prefix="convo-workspace-", suffix=".zip")
    os.close(handle)
    target = Path(name)
    try:
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for folder, dirnames, filenames in os.walk(resolved):
                dirnames.sort()
                base = Path(folder)
                for filename in sorted(filenames):
                    source = base / filename
                    if source.is_symlink() or not source.is_file():
                        continue
                    archive.write(source, source.relative_to(resolved).as_posix())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


@dataclass
class UploadResult:
    uploaded_files: list[str] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)


def save_upload(root: Path, filename: str, source: BinaryIO, result: UploadResult) -> None:
    """Copy one uploaded file into the workspace (created if missing); a name that would land
    outside it, or on a directory, is skipped with a reason."""
    root.mkdir(parents=True, exist_ok=True)
    if not filename or filename.endswith("/"):
        result.skipped_files.append({"name": filename, "reason": "Missing file name"})
        return
    try:
        target = resolve_inside(root, filename)
    except OutsideWorkspace as exc:
        result.skipped_files.append({"name": filename, "reason": str(exc)})
        return
    if target.is_dir():
        result.skipped_files.append({"name": filename, "reason": "A directory has this name"})
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        shutil.copyfileobj(source, out)
    result.uploaded_files.append(relative_name(root, target))
