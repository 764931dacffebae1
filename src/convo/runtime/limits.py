"""Resource limits for a sandbox, enforced by the kernel.

Two mechanisms, because neither covers everything on every machine:

* **rlimits, per process**, set with ``ulimit`` (soft = hard) by the sandbox's shell before
  its first command, so every command inherits them and cannot raise them (raising a hard
  limit needs CAP_SYS_RESOURCE in the initial user namespace, which a sandbox never has):
  CPU seconds, address space, file size, open files, no core dumps, and the process count.
* **a cgroup, per sandbox**, when this server may create one (root with a writable cgroup
  v1 ``pids``/``memory`` hierarchy, or a delegated cgroup v2 subtree): ``pids.max`` and a
  memory limit for the whole sandbox together.

Why both for the process count: RLIMIT_NPROC counts processes per user, and the kernel
exempts root in the initial user namespace entirely. In the bubblewrap sandbox the shell
runs in a fresh user namespace as an unprivileged uid, where the kernel (5.14+) counts
processes per (user namespace, uid) - a per-sandbox count - and the rlimit bites; the
pids cgroup is the stronger guarantee (it also covers a root-mapped sandbox) and is used
whenever it can be created. The unconfined process sandbox gets neither: its processes
share the server's uid, and an RLIMIT_NPROC there would count the server's own threads.

Memory: RLIMIT_AS bounds each process's address space (generous by default, since
runtimes such as the JVM or Go reserve far more than they use); the memory cgroup bounds
the sandbox as a whole and makes the kernel's OOM killer pick a process inside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

GIB = 1024**3
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ResourceLimits:
    """What one sandbox may use; ``None`` leaves a limit off."""

    cpu_seconds: int | None = 600  # per process
    address_space_bytes: int | None = 16 * GIB  # per process
    file_size_bytes: int | None = 8 * GIB  # largest file one process may write
    open_files: int | None = 4096  # per process
    max_processes: int | None = 512  # per sandbox: pids cgroup and RLIMIT_NPROC
    memory_bytes: int | None = 4 * GIB  # per sandbox: memory cgroup only
    tmp_size_bytes: int | None = 1 * GIB  # the sandbox's private /tmp

    def ulimit_script(self) -> str:
        """Shell lines setting the per-process limits; the shell exits 97 if one fails."""
        flags = ["-c 0"]
        if self.cpu_seconds is not None:
            flags.append(f"-t {self.cpu_seconds}")
        if self.address_space_bytes is not None:
            flags.append(f"-v {self.address_space_bytes // 1024}")
        if self.file_size_bytes is not None:
            flags.append(f"-f {self.file_size_bytes // 1024}")
        if self.open_files is not None:
            flags.append(f"-n {self.open_files}")
        if self.max_processes is not None:
            flags.append(f"-u {self.max_processes}")
        return "".join(f"ulimit {flag} || exit 97\n" for flag in flags)


# --- cgroups ----------------------------------------------------------------------------
def _own_cgroups() -> dict[str, str]:
    """Controller name (``""`` for cgroup v2) → this process's cgroup path."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            found[name] = path
    return found


def _v1_parent(controller: str, own: dict[str, str]) -> Path | None:
    mount = CGROUP_ROOT / controller
    if controller not in own or not (mount / "cgroup.procs").exists():
        return None
    return mount / own[controller].lstrip("/") / "convo"


def _v2_parent(controller: str, own: dict[str, str]) -> Path | None:
    mount = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else None
    if mount is None or "" not in own:
        return None
    base = mount / own[""].lstrip("/")
    if controller not in (base / "cgroup.controllers").read_text().split():
        return None
    parent = base / "convo"
    parent.mkdir(exist_ok=True)
    (base / "cgroup.subtree_control").write_text(f"+{controller}")  # EBUSY unless delegated
    (parent / "cgroup.subtree_control").write_text(f"+{controller}")
    return parent


def _settings(controller: str, version: int, limits: ResourceLimits) -> dict[str, int]:
    if controller == "pids" and limits.max_processes is not None:
        return {"pids.max": limits.max_processes}
    if controller == "memory" and limits.memory_bytes is not None:
        if version == 1:
            return {"memory.limit_in_bytes": limits.memory_bytes}
        return {"memory.max": limits.memory_bytes, "memory.swap.max": 0}
    return {}


class SandboxCgroup:
    """The cgroups (one per controller) that one sandbox's processes join."""

    def __init__(self, dirs: list[Path], enforced: list[str]) -> None:
        self.dirs = dirs
        self.enforced = enforced  # e.g. ["pids.max=512", "memory.limit_in_bytes=..."]

    @property
    def procs_files(self) -> list[str]:
        return [str(directory / "cgroup.procs") for directory in self.dirs]

    @classmethod
    def create(cls, label: str, limits: ResourceLimits) -> SandboxCgroup:
        """Blocking. Creates what this machine allows; an empty group when nothing."""
        own = _own_cgroups()
        name = f"{label}-{uuid.uuid4().hex[:8]}"
        dirs: list[Path] = []
        enforced: list[str] = []
        for controller in ("pids", "memory"):
            for version, find in ((1, _v1_parent), (2, _v2_parent)):
                settings = _settings(controller, version, limits)
                if not settings:
                    break
                directory: Path | None = None
                try:
                    parent = find(controller, own)
                    if parent is None:
                        continue
                    directory = parent / name
                    directory.mkdir(parents=True, exist_ok=True)
                    for key, value in settings.items():
                        if (directory / key).exists():
                            (directory / key).write_text(str(value))
                            enforced.append(f"{key}={value}")
                except OSError as exc:
                    logger.debug("no %s cgroup (v%d): %s", controller, version, exc)
                    if directory is not None:
                        with contextlib.suppress(OSError):
                            directory.rmdir()
                    continue
                if directory not in dirs:
                    dirs.append(directory)
                break
        return cls(dirs, enforced)

    def remove(self) -> None:
        """Blocking. Kills whatever is left in the cgroups, then removes them."""
        for directory in self.dirs:
            for _ in range(40):
                try:
                    pids = (directory / "cgroup.procs").read_text().split()
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)  # zombies not reaped yet
            else:
                logger.warning("could not remove cgroup %s", directory)
        self.dirs = []
