"""The descriptor walk below a conversation's workspace root: how the server reaches a path
there, never by its name.

The agent owns everything below the workspace root and may change it while the server works
(swap a directory and a symlink in a loop, replace a file by a FIFO). So the server never
checks a path and opens it again by name: every access walks from a descriptor of the root,
one component at a time, with ``openat``-style calls relative to the previous directory's
descriptor and ``O_NOFOLLOW``. A symlink is followed the way the sandbox would see it (an
absolute target is read under the agent's name for the root, ``/workspace`` in the
bubblewrap sandbox), by reading it with ``readlinkat`` and walking on from the root or the
current directory; ``..`` pops the walk's own stack, so no step ever opens ``..``. A target
leaving the workspace raises ``PathOutsideWorkspace``; a component changed between the two
calls of a step (a directory became a symlink) makes that call fail (``ELOOP``,
``ENOTDIR``) instead of following it. The worst a concurrent swap can do is move the walk
to another place inside the workspace.

The file operations built on it: :mod:`convo.runtime.workspace`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from convo.errors import PathOutsideWorkspace

_MAX_LINKS = 40
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 128  # directory levels a walk of the whole tree goes down


class WorkspaceChanged(OSError):
    """The workspace changed under a step of the walk (a race with the agent)."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ELOOP, "changed while it was being accessed", path)


@dataclass(frozen=True)
class Entry:
    name: str  # relative to the directory listed (nested names for a tree)
    is_dir: bool  # a real directory (a symlink to one is not)
    is_link: bool = False


class _Walk:
    """The directory descriptors from the root to where a walk stands."""

    def __init__(self, root_fd: int) -> None:
        self.fds = [root_fd]
        self.names: list[str] = []

    @property
    def fd(self) -> int:
        return self.fds[-1]

    def push(self, fd: int, name: str) -> None:
        self.fds.append(fd)
        self.names.append(name)

    def pop(self) -> None:
        os.close(self.fds.pop())
        self.names.pop()

    def reset(self) -> None:
        while len(self.fds) > 1:
            self.pop()

    def close(self) -> None:
        for fd in reversed(self.fds):
            os.close(fd)
        self.fds = []


class WorkspaceRoot:
    """One workspace root on the host and the walk below it; ``agent_root`` is how the agent
    names it, ``owner`` who gets what the walk creates. :class:`Workspace
    <convo.runtime.workspace.Workspace>` adds the file operations."""

    def __init__(self, root: Path, *, agent_root: str, owner: tuple[int, int] | None = None):
        self.root = root
        self.agent_root = PurePosixPath(agent_root)
        self.owner = owner

    # --- names -----------------------------------------------------------------------------
    def parts(self, path: str) -> list[str]:
        """The components of ``path`` (absolute under the agent's root, or relative to it),
        ``..`` applied lexically; raises PathOutsideWorkspace for anything else."""
        if "\0" in path:
            raise PathOutsideWorkspace(f"Invalid path {path!r}")
        named = PurePosixPath(path)
        if named.is_absolute():
            if named != self.agent_root and self.agent_root not in named.parents:
                raise PathOutsideWorkspace(f"{path} is outside the workspace {self.agent_root}")
            named = named.relative_to(self.agent_root)
        done: list[str] = []
        for part in named.parts:
            if part == "..":
                if not done:
                    raise PathOutsideWorkspace(f"{path} is outside the workspace {self.agent_root}")
                done.pop()
            elif part not in ("", "."):
                done.append(part)
        return done

    # --- the walk --------------------------------------------------------------------------
    def exists(self) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(self.root).st_mode)
        except OSError:
            return False

    def ensure_root(self) -> None:
        """Create the root (and its parents, server-owned) if missing; give it the owner."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.root, 0o755)
            if self.owner is not None and os.geteuid() == 0:
                os.chown(self.root, *self.owner, follow_symlinks=False)

    def _open_root(self) -> int:
        try:
            return os.open(self.root, DIR_FLAGS)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise WorkspaceChanged(str(self.root)) from exc

    @contextlib.contextmanager
    def _walk(
        self,
        path: str,
        *,
        follow_last: bool = True,
        create_dirs: bool = False,
        missing_ok: bool = False,
    ) -> Iterator[tuple[_Walk, str]]:
        """Walk to the parent of ``path``'s last component; yields (walk, last name), the
        name "" for the root itself. Symlinks on the way are followed inside the workspace
        (the last one too, with ``follow_last``). With ``missing_ok``, a missing directory
        ends the walk there, the rest of the path as the "name"."""
        todo = self.parts(path)
        walk = _Walk(self._open_root())
        links = 0
        try:
            while todo:
                part = todo.pop(0)
                if part == "..":
                    if not walk.names:
                        raise PathOutsideWorkspace(f"{path} leads outside the workspace")
                    walk.pop()
                    continue
                mode = self._mode(walk, part, create_dir=create_dirs and bool(todo))
                if mode is None and (not todo or (missing_ok and ".." not in todo)):
                    part = "/".join([part, *todo])  # missing: the caller may create it
                    break
                if mode is None:
                    raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
                if stat.S_ISLNK(mode) and (todo or follow_last):
                    links += 1
                    if links > _MAX_LINKS:
                        raise PathOutsideWorkspace(f"Too many levels of symbolic links in {path}")
                    todo = self._link_target(walk, part, path) + todo
                    continue
                if not todo:
                    break
                if not stat.S_ISDIR(mode):
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
                try:
                    walk.push(os.open(part, DIR_FLAGS, dir_fd=walk.fd), part)
                except OSError as exc:
                    raise WorkspaceChanged(path) from exc
            else:
                part = ""
            yield walk, part
        finally:
            walk.close()

    def _mode(self, walk: _Walk, name: str, *, create_dir: bool) -> int | None:
        """The mode of ``name`` in the walk's directory, not followed; None if missing
        (created first as a directory with ``create_dir``)."""
        try:
            return os.stat(name, dir_fd=walk.fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            if not create_dir:
                return None
        self._mkdir(walk.fd, name)
        return os.stat(name, dir_fd=walk.fd, follow_symlinks=False).st_mode

    def _link_target(self, walk: _Walk, name: str, path: str) -> list[str]:
        """The components to walk instead of the symlink ``name``; an absolute target
        (read as the agent sees it) restarts the walk at the root."""
        try:
            target = os.readlink(name, dir_fd=walk.fd)
        except OSError as exc:
            raise WorkspaceChanged(path) from exc
        if target.startswith("/"):
            walk.reset()
            return self.parts(target)
        return [p for p in target.split("/") if p not in ("", ".")]

    def _mkdir(self, dir_fd: int, name: str) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=dir_fd)
            self._chown(name, dir_fd)

    def _chown(self, name: str, dir_fd: int) -> None:
        if self.owner is not None and os.geteuid() == 0:
            os.chown(name, *self.owner, dir_fd=dir_fd, follow_symlinks=False)

    @staticmethod
    def _open_at(walk: _Walk, name: str, flags: int, mode: int = 0o644) -> int:
        if not name:
            return os.dup(walk.fd) if flags & os.O_DIRECTORY else _raise_is_dir()
        try:
            return os.open(name, flags, mode, dir_fd=walk.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the name became a symlink after the walk read it
                raise WorkspaceChanged(name) from exc
            raise


def _raise_is_dir() -> int:
    raise IsADirectoryError(errno.EISDIR, "The workspace root is a directory")


def scan(fd: int) -> list[Entry]:
    """The entries of the directory ``fd`` in name order (closes ``fd``)."""
    try:
        with os.scandir(fd) as scanned:
            return sorted(
                (Entry(e.name, e.is_dir(follow_symlinks=False), e.is_symlink()) for e in scanned),
                key=lambda e: e.name,
            )
    finally:
        os.close(fd)


def descend(root_fd: int, depth: int) -> Iterator[tuple[str, int, list[Entry]]]:
    """(prefix, directory fd, entries) for each directory below ``root_fd`` (itself
    included) down to ``depth`` levels, depth first in name order. Every directory is
    entered with O_NOFOLLOW | O_DIRECTORY relative to its parent's descriptor, and only the
    descriptors of the current branch are open. Closes ``root_fd``."""
    frames: list[tuple[str, int, Iterator[Entry]]] = []
    try:
        entries = scan(os.dup(root_fd))
        frames.append(("", root_fd, iter([e for e in entries if e.is_dir])))
        yield "", root_fd, entries
        while frames:
            prefix, fd, pending = frames[-1]
            entry = next(pending, None)
            if entry is None or len(frames) >= depth:
                os.close(frames.pop()[1])
                continue
            try:
                child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # became a symlink, or gone
            name = f"{prefix}{entry.name}/"
            try:
                entries = scan(os.dup(child))
            except OSError:
                os.close(child)
                continue
            frames.append((name, child, iter([e for e in entries if e.is_dir])))
            yield name, child, entries
    finally:
        for _, fd, _ in frames:
            os.close(fd)
