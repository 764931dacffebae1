"""A conversation's workspace on the host, as the server touches it: reading, listing,
writing and removing files, never by path name.

Every operation walks from a descriptor of the root (:mod:`convo.runtime.workspace_walk`
explains the walk and what a concurrent change by the agent can do to it). Files and
directories the server creates get the sandbox's owner (``owner``), so that the agent can
change them like its own. The functions here block; call them in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO, Literal

from convo.runtime.workspace_walk import (
    DIR_FLAGS,
    MAX_DEPTH,
    Entry,
    WorkspaceRoot,
    descend,
    scan,
)

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_COPY_CHUNK = 1024 * 1024

Kind = Literal["missing", "dir", "file", "other"]


class Workspace(WorkspaceRoot):
    """One workspace root on the host; ``agent_root`` is how the agent names it."""

    # --- queries ---------------------------------------------------------------------------
    def resolve(self, path: str) -> str:
        """``path`` with its symlinks followed, relative to the root ("" for the root); the
        part of it that does not exist yet is kept as it is."""
        with self._walk(path, missing_ok=True) as (walk, name):
            return "/".join([*walk.names, name] if name else walk.names)

    def kind(self, path: str) -> Kind:
        try:
            with self._walk(path) as (walk, name):
                if not name:
                    return "dir"
                mode = os.stat(name, dir_fd=walk.fd, follow_symlinks=False).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        if stat.S_ISDIR(mode):
            return "dir"
        return "file" if stat.S_ISREG(mode) else "other"

    def lexists(self, path: str) -> bool:
        """Whether ``path``'s last component exists, not followed if it is a symlink."""
        try:
            with self._walk(path, follow_last=False) as (walk, name):
                if name:
                    os.stat(name, dir_fd=walk.fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def read_bytes(self, path: str, limit: int) -> bytes:
        """At most ``limit + 1`` bytes of a regular file (one more tells it is larger)."""
        with self._walk(path) as (walk, name):
            fd = self._open_at(walk, name, _READ_FLAGS)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotRegularFile(path)
            return handle.read(limit + 1)

    def list_dir(self, path: str = "") -> list[Entry]:
        """The entries of a directory (symlinks listed as files, not followed)."""
        with self._walk(path) as (walk, name):
            fd = self._open_at(walk, name, DIR_FLAGS)
        return scan(fd)

    def tree(self, path: str, depth: int, *, hidden: bool = False) -> list[Entry]:
        """Entries below a directory down to ``depth`` levels, names relative to it, each
        directory followed by its own entries."""
        with self._walk(path) as (walk, name):
            fd = self._open_at(walk, name, DIR_FLAGS)
        listed = {
            prefix: [e for e in entries if hidden or not e.name.startswith(".")]
            for prefix, _, entries in descend(fd, depth)
        }
        found: list[Entry] = []

        def add(prefix: str) -> None:
            for entry in listed.get(prefix, []):
                found.append(Entry(prefix + entry.name, entry.is_dir, entry.is_link))
                if entry.is_dir:
                    add(f"{prefix}{entry.name}/")

        add("")
        return found

    def files(self) -> Iterator[tuple[str, BinaryIO]]:
        """Every regular file of the workspace (symlinks skipped) as (relative name, open
        file), in name order; each file is closed when the iteration moves on."""
        for prefix, dir_fd, entries in descend(self._open_root(), MAX_DEPTH):
            for entry in entries:
                if entry.is_dir:
                    continue
                try:
                    fd = os.open(entry.name, _READ_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue  # a symlink, a FIFO or gone
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for a directory
                    os.close(fd)
                    continue
                with os.fdopen(fd, "rb") as handle:
                    yield prefix + entry.name, handle

    # --- changes ---------------------------------------------------------------------------
    def write(self, path: str, source: bytes | BinaryIO, *, exclusive: bool = False) -> str:
        """Write a regular file (its directories created as needed); returns its resolved
        relative name. ``exclusive`` fails if it exists; otherwise it is truncated."""
        with self._walk(path, create_dirs=True) as (walk, name):
            flags = _WRITE_FLAGS | (os.O_EXCL if exclusive else 0)
            try:
                fd = self._open_at(walk, name, flags)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # a FIFO nobody reads
                    raise NotRegularFile(path) from exc
                raise
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise NotRegularFile(path)
                if info.st_nlink > 1:
                    raise PermissionError(errno.EPERM, "The file has other hard links", path)
                if self.owner is not None and os.geteuid() == 0 and info.st_uid != self.owner[0]:
                    os.fchown(fd, *self.owner)
                os.ftruncate(fd, 0)
                with os.fdopen(os.dup(fd), "wb") as out:
                    if isinstance(source, bytes):
                        out.write(source)
                    else:
                        while chunk := source.read(_COPY_CHUNK):
                            out.write(chunk)
            finally:
                os.close(fd)
            return "/".join([*walk.names, name])

    def remove(self, path: str) -> None:
        """Remove a file (a symlink itself, never what it points to)."""
        with self._walk(path, follow_last=False) as (walk, name):
            if not name:
                raise IsADirectoryError(errno.EISDIR, "The workspace root", path)
            os.unlink(name, dir_fd=walk.fd)

    def chown_tree(self, uid: int, gid: int) -> None:
        """Give every entry of the workspace to ``uid`` (symlinks themselves, never their
        targets; files with several hard links left alone)."""
        os.chown(self.root, uid, gid, follow_symlinks=False)
        for _, dir_fd, entries in descend(self._open_root(), MAX_DEPTH):
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    info = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
                    several = info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode)
                    if info.st_uid != uid and not several:
                        os.chown(entry.name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


class NotRegularFile(OSError):
    def __init__(self, path: str) -> None:
        super().__init__(errno.EINVAL, "Not a regular file", path)
