"""A conversation's workspace as the file routes see it: list, read, zip, upload.

Every access goes through the sandbox's ``Workspace`` (``convo.runtime.workspace``):
descriptor-relative and no-follow from the workspace root, symlinks followed only as the
agent sees them and only inside the workspace, so a path the agent changes while a request
runs can never lead outside it. A path outside raises ``PathOutsideWorkspace``. Clients may
name paths relative to the workspace or absolute under ``/workspace`` (OpenHands' name for
it, whatever the runtime). The functions here block; callers run them in a thread.
"""

from __future__ import annotations

import errno
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from convo.errors import ConvoError, PathOutsideWorkspace
from convo.runtime.workspace import Workspace
from convo.runtime.workspace_walk import WorkspaceChanged

AGENT_WORKSPACE = PurePosixPath("/workspace")  # how OpenHands clients name the workspace root
MAX_READ_BYTES = 5 * 1024 * 1024
HIDDEN_ENTRIES = frozenset({".git"})
_COPY_CHUNK = 1024 * 1024


class WorkspaceFileError(ConvoError):
    """A file request on a workspace cannot be carried out."""


class WorkspaceMissing(WorkspaceFileError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"The workspace of conversation {conversation_id} does not exist yet: start the "
            "conversation or upload a file first"
        )


class FileMissing(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"File not found: {path}")


class NotAFile(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"Not a file: {path}")


class NotADirectory(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"Not a directory: {path}")


class BinaryFile(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"Unable to open binary file: {path}")


class FileTooLarge(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"File too large to show: {path} (over {MAX_READ_BYTES} bytes)")


class WorkspaceTooLarge(WorkspaceFileError):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"The workspace holds more than {limit_bytes // 2**20} MB to archive (its quota, "
            "CONVO_WORKSPACE_DISK_MB, sparse files counted at their full size)"
        )


class PathChanged(WorkspaceFileError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path} changed while it was being read; try again")


def client_path(path: str) -> str:
    """A client's name for a workspace path, made relative (``/workspace/x`` → ``x``)."""
    named = PurePosixPath(path.replace("\\", "/"))
    if named.is_absolute():
        try:
            return str(named.relative_to(AGENT_WORKSPACE))
        except ValueError:
            raise PathOutsideWorkspace(f"Path {path!r} is outside the workspace") from None
    return str(named)


def translate(exc: OSError, path: str) -> WorkspaceFileError:
    """The file error a client sees for an OSError of the workspace walk."""
    if isinstance(exc, WorkspaceChanged):
        return PathChanged(path)
    if exc.errno in (errno.ENOENT,):
        return FileMissing(path)
    if exc.errno == errno.ENOTDIR:
        return NotADirectory(path)
    if exc.errno in (errno.EISDIR, errno.EINVAL):
        return NotAFile(path)
    return WorkspaceFileError(f"Cannot access {path}: {exc.strerror or exc}")


def existing(workspace: Workspace, conversation_id: str) -> Workspace:
    if not workspace.exists():
        raise WorkspaceMissing(conversation_id)
    return workspace


def list_entries(workspace: Workspace, path: str | None) -> list[str]:
    """Entries of a workspace directory: directories first (with a trailing ``/``), then
    files, each as its path relative to the workspace."""
    shown = path or "."
    try:
        relative = workspace.resolve(client_path(path)) if path else ""
        entries = workspace.list_dir(relative)
    except OSError as exc:
        raise translate(exc, shown) from exc
    base = f"{relative}/" if relative else ""
    folders: list[str] = []
    files: list[str] = []
    for entry in entries:
        if entry.name in HIDDEN_ENTRIES:
            continue
        if entry.is_dir or (entry.is_link and _is_dir_inside(workspace, base + entry.name)):
            folders.append(f"{base}{entry.name}/")
        else:
            files.append(f"{base}{entry.name}")
    return sorted(folders, key=str.lower) + sorted(files, key=str.lower)


def _is_dir_inside(workspace: Workspace, path: str) -> bool:
    """Whether a symlink leads to a directory inside the workspace (one leading out is
    listed as a file, and opening it is refused)."""
    try:
        return workspace.kind(path) == "dir"
    except (OSError, PathOutsideWorkspace):
        return False


def read_text(workspace: Workspace, path: str) -> str:
    try:
        data = workspace.read_bytes(client_path(path), MAX_READ_BYTES)
    except OSError as exc:
        raise translate(exc, path) from exc
    if len(data) > MAX_READ_BYTES:
        raise FileTooLarge(path)
    if b"\x00" in data[:8192]:
        raise BinaryFile(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BinaryFile(path) from None


def zip_workspace(workspace: Workspace, max_bytes: int | None = None) -> Path:
    """A zip of the whole workspace's regular files in a temporary file (the caller
    deletes it); symlinks, FIFOs and the like are left out. Raises WorkspaceTooLarge once
    more than ``max_bytes`` were read: sparse files allocate nothing, so the quota does not
    bound what there is to read and compress."""
    handle = tempfile.NamedTemporaryFile(prefix="convo-workspace-", suffix=".zip", delete=False)
    target = Path(handle.name)
    try:
        with handle, zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            read = 0
            for name, source in workspace.files():
                with archive.open(name, "w", force_zip64=True) as out:
                    while chunk := source.read(_COPY_CHUNK):
                        read += len(chunk)
                        if max_bytes is not None and read > max_bytes:
                            raise WorkspaceTooLarge(max_bytes)
                        out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


@dataclass
class UploadResult:
    uploaded_files: list[str] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)


def save_upload(
    workspace: Workspace, filename: str, source: BinaryIO, result: UploadResult
) -> None:
    """Copy one uploaded file into the workspace (created if missing); a name that would land
    outside it, or on a directory, is skipped with a reason."""
    if not filename or filename.endswith("/"):
        result.skipped_files.append({"name": filename, "reason": "Missing file name"})
        return
    try:
        workspace.ensure_root()
        result.uploaded_files.append(workspace.write(client_path(filename), source))
    except PathOutsideWorkspace as exc:
        result.skipped_files.append({"name": filename, "reason": str(exc)})
    except IsADirectoryError:
        result.skipped_files.append({"name": filename, "reason": "A directory has this name"})
    except OSError as exc:
        result.skipped_files.append({"name": filename, "reason": str(translate(exc, filename))})
