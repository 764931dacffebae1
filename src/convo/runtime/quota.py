"""Disk limits: one workspace's quota, and the data dir's free space.

A workspace's quota (``CONVO_WORKSPACE_DISK_MB``) is enforced in two ways:

* **by the kernel, per file**: the sandbox's RLIMIT_FSIZE is at most the quota, so no single
  file can outgrow it (the writer gets SIGXFSZ, "File size limit exceeded");
* **watched, per workspace**: :class:`QuotaWatch`, a named task owned by the sandbox,
  measures the workspace (allocated blocks, hard links once, symlinks not followed, plus
  deleted files that the sandbox's processes still hold open or mapped, which no directory
  lists but which use the disk until closed) and, once it is over its quota, kills the
  sandbox's shell and everything it started and reports the failure, which stops the
  conversation with an error event (started again, a conversation over its quota may
  shrink its workspace, not grow it). It measures
  again after a pause of at least a second and ten times the last measurement's CPU
  time, so a large workspace costs at most a tenth of a core; a fast writer can overshoot
  by what it writes in that pause. The watches measure in two threads of their own, not in
  the event loop's shared pool: with 200 conversations running, their walks (about a
  core's worth of thread time) filled that pool, so that every quick blocking call of a
  request (a create's free-disk check, a sandbox's start) waited behind them, and six
  threads contending for the interpreter slowed the event loop itself.

What would enforce it fully in the kernel, and why it is not used: project quotas need the
data dir's filesystem mounted with ``prjquota`` (ext4/xfs), which convo cannot assume; a
loop-mounted filesystem image per workspace needs root, a loop device per conversation
and mounts that outlive a crashed server. The watch works everywhere.

New work is refused while the data dir's disk is nearly full (:func:`ensure_free_disk`),
so that conversations cannot fill the disk that holds the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from convo.aio import cancel_and_await
from convo.errors import DiskNearlyFull, SandboxError, WorkspaceQuotaExceeded
from convo.runtime.base import SandboxSpec
from convo.runtime.limits import ResourceLimits
from convo.runtime.shell import BashSession

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
_MIN_PAUSE = 1.0
_MAX_PAUSE = 30.0
_INODE_CHARGE = 4096  # bytes charged per file at least
_MAX_DEPTH = 512  # directory levels; each level of the walk holds one descriptor
_PAUSE_FACTOR = 10  # of a measurement's CPU time: the watch costs at most a tenth of a core
# Shared by every watch of the process; its threads start with the first measurement.
_MEASURING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="convo-quota")


def disk_usage(root: Path) -> int:
    """Blocking: bytes allocated below ``root`` (hard links counted once, symlinks not
    followed, entries that vanish meanwhile skipped).

    The walk never goes by path name: each directory is opened relative to its parent's
    descriptor with ``O_NOFOLLOW``, so a directory the agent swaps for a symlink mid-walk is
    skipped, never followed out of the workspace (into the host's folders). A tree nested
    deeper than ``_MAX_DEPTH`` cannot be measured with a bounded number of descriptors and
    counts as over the quota (raises :class:`WorkspaceQuotaExceeded`).
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        top = os.open(root, flags)
    except OSError:
        return 0
    total = 0
    seen: set[tuple[int, int]] = set()
    # depth-first, one open descriptor and one pending-entry list per level
    stack: list[tuple[int, list[os.DirEntry[str]]]] = [(top, _entries(top))]
    try:
        while stack:
            fd, pending = stack[-1]
            if not pending:
                os.close(fd)
                stack.pop()
                continue
            entry = pending.pop()
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += _charge(info)
            if not stat.S_ISDIR(info.st_mode):
                continue
            if len(stack) >= _MAX_DEPTH:
                raise WorkspaceQuotaExceeded(
                    f"The workspace nests directories more than {_MAX_DEPTH} levels deep, "
                    "which its disk quota cannot measure: its commands were stopped"
                )
            try:
                child = os.open(entry.name, flags, dir_fd=fd)
            except OSError:  # gone, or swapped for a symlink: nothing of ours to count
                continue
            stack.append((child, _entries(child)))
    finally:
        for fd, _pending in stack:
            os.close(fd)
    return total


def _charge(info: os.stat_result) -> int:
    """What one entry counts against the quota: its allocated bytes, and never less than
    ``_INODE_CHARGE``: empty files and short symlinks allocate no block but each takes an
    inode, and a filesystem out of inodes is as full as one out of blocks."""
    return max(info.st_blocks * 512, _INODE_CHARGE)


def _entries(fd: int) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(fd) as listing:
            return list(listing)
    except OSError:
        return []


def held_usage(pid: int | None, device: int, proc: Path = Path("/proc")) -> int:
    """Blocking: bytes allocated on ``device`` by deleted files that process ``pid`` or its
    descendants still hold open or mapped (a file deleted while open keeps its blocks and is
    in no directory, so :func:`disk_usage` cannot see it)."""
    if pid is None:
        return 0
    total = 0
    seen: set[int] = set()
    for holder in _descendants(pid, proc):
        for folder in (proc / str(holder) / "fd", proc / str(holder) / "map_files"):
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    info = os.stat(entry.path)  # the open file itself (a magic link)
                except OSError:
                    continue
                if (
                    info.st_nlink == 0
                    and info.st_dev == device
                    and stat.S_ISREG(info.st_mode)
                    and info.st_ino not in seen
                ):
                    seen.add(info.st_ino)
                    total += info.st_blocks * 512
    return total


def _descendants(pid: int, proc: Path) -> list[int]:
    """``pid`` and every process below it.

    Read from each process's ``task/*/children`` (the kernel's list of a thread's children):
    the cost is the tree's own size. Hundreds of watches each reading every process's
    ``stat`` instead once cost more than the machine's cores (a process table of 600 read
    by 200 watches every second). Without those files (a kernel built without them), from
    every process's stat.
    """
    found = [pid]
    todo = [pid]
    seen = {pid}
    while todo:
        children = _children(todo.pop(), proc)
        if children is None:
            return _descendants_from_stat(pid, proc)
        for child in children:
            if child not in seen:
                seen.add(child)
                found.append(child)
                todo.append(child)
    return found


def _children(pid: int, proc: Path) -> list[int] | None:
    """The children of every thread of ``pid`` ([] when it is gone); None when the kernel
    has no ``children`` files."""
    try:
        tasks = [entry.path for entry in os.scandir(proc / str(pid) / "task")]
    except OSError:
        return []
    children: list[int] = []
    for task in tasks:
        try:
            with open(os.path.join(task, "children"), "rb") as file:
                children.extend(int(child) for child in file.read().split())
        except FileNotFoundError:
            if os.path.isdir(task):  # the thread lives: no such file on this kernel
                return None
        except (OSError, ValueError):
            continue
    return children


def _descendants_from_stat(pid: int, proc: Path) -> list[int]:
    """``pid`` and every process below it (read from each process's stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            fields = (proc / entry.name / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found = [pid]
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def ensure_free_disk(path: Path, min_free_mb: int) -> None:
    """Blocking: raise DiskNearlyFull when ``path``'s filesystem has less than
    ``min_free_mb`` MiB free for this server."""
    if min_free_mb <= 0:
        return
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    free = shutil.disk_usage(target).free
    if free < min_free_mb * MIB:
        raise DiskNearlyFull(
            f"The server's disk is nearly full ({free // MIB} MB free, less than "
            f"CONVO_MIN_FREE_DISK_MB={min_free_mb}): no conversation is created or started "
            "until space is freed"
        )
    # out of inodes is full too: as many free as the free space would hold at the charge
    fs = os.statvfs(target)
    wanted = min_free_mb * MIB // _INODE_CHARGE
    if fs.f_files and fs.f_favail < wanted:
        raise DiskNearlyFull(
            f"The server's disk is nearly out of inodes ({fs.f_favail} free, less than "
            f"{wanted} for CONVO_MIN_FREE_DISK_MB={min_free_mb}): no conversation is created "
            "or started until files are removed"
        )


class QuotaWatch:
    """Measures one workspace until closed; calls ``on_exceeded`` once when it is over."""

    def __init__(
        self,
        root: Path,
        limit_bytes: int,
        *,
        name: str,
        on_exceeded: Callable[[WorkspaceQuotaExceeded], Awaitable[None]],
        baseline_bytes: int = 0,
        holder: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._root = root
        self._holder = holder  # the pid whose process tree may hold deleted files
        self._limit = limit_bytes
        self._baseline = baseline_bytes  # the use before the sandbox's shell started
        self._name = name
        self._on_exceeded = on_exceeded
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name=f"workspace-quota:{self._name}")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_await(task)

    async def _watch(self) -> None:
        limit = max(self._limit, self._baseline)  # a workspace over it may shrink, not grow
        while True:
            try:
                used, cost = await asyncio.get_running_loop().run_in_executor(
                    _MEASURING, _timed_usage, self._root, self._holder()
                )
            except WorkspaceQuotaExceeded as unmeasurable:
                await self._on_exceeded(unmeasurable)
                return
            except Exception:  # never silently: the quota would no longer be watched
                logger.exception("measuring workspace %s failed; retrying", self._root)
                used, cost = 0, 0.0
            if used > limit:
                await self._on_exceeded(
                    WorkspaceQuotaExceeded(
                        f"The workspace uses {used / MIB:.0f} MB, over its quota of "
                        f"{self._limit / MIB:.0f} MB (CONVO_WORKSPACE_DISK_MB): its commands "
                        "were stopped. Started again, the conversation may delete files but "
                        "not grow it"
                    )
                )
                return
            await asyncio.sleep(min(max(_MIN_PAUSE, _PAUSE_FACTOR * cost), _MAX_PAUSE))


def _timed_usage(root: Path, holder: int | None) -> tuple[int, float]:
    """disk_usage plus held_usage, and the CPU time it took (not the wall time: a busy
    machine's wait for a thread or the CPU must not lengthen the pause)."""
    began = time.thread_time()
    used = disk_usage(root)
    with contextlib.suppress(OSError):  # no workspace: nothing held on it either
        used += held_usage(holder, os.stat(root).st_dev)
    return used, time.thread_time() - began


class WorkspaceGuard:
    """A sandbox's quota: its file-size rlimit, its watch, and the failure it reports."""

    def __init__(self, spec: SandboxSpec) -> None:
        self._limit = spec.disk_limit_bytes
        self._name = spec.conversation_id
        self._watch: QuotaWatch | None = None
        self._failure: SandboxError | None = None
        self._failed = asyncio.Event()
        self._baseline = 0

    def limit_files(self, limits: ResourceLimits) -> ResourceLimits:
        """``limits`` with no file larger than the quota."""
        if self._limit is None:
            return limits
        largest = min(self._limit, limits.file_size_bytes or self._limit)
        return dataclasses.replace(limits, file_size_bytes=largest)

    def ulimit_script(self) -> str:
        """For a shell with no other limits: the file-size rlimit alone."""
        if self._limit is None:
            return ""
        return f"ulimit -f {max(1, self._limit // 1024)} || exit 97\n"

    async def measure(self, root: Path) -> None:
        """Before the shell starts: the workspace's use, which a restarted conversation over
        its quota may not exceed (measured before any command of the agent can write)."""
        if self._limit is not None:
            self._baseline = await asyncio.to_thread(disk_usage, root)

    def start(self, root: Path, shell: BashSession) -> None:
        if self._limit is None or self._watch is not None:
            return

        async def exceeded(error: WorkspaceQuotaExceeded) -> None:
            logger.warning("conversation %s: %s", self._name, error)
            self._failure = error
            self._failed.set()
            await shell.close()  # every process of the sandbox, now

        self._watch = QuotaWatch(
            root,
            self._limit,
            name=self._name,
            on_exceeded=exceeded,
            baseline_bytes=self._baseline,
            holder=lambda: shell.pid,
        )
        self._watch.start()

    def check(self) -> None:
        """Raise the failure, if there was one."""
        if self._failure is not None:
            raise self._failure

    async def wait_failed(self) -> SandboxError:
        await self._failed.wait()
        assert self._failure is not None
        return self._failure

    async def close(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.close()
