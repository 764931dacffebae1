"""The bubblewrap sandbox: the persistent bash runs confined to its workspace.

Inside, the agent sees a read-only ``/usr`` (plus the ``/bin``, ``/lib*`` links), an
allow-list of ``/etc`` (no shadow files, ssh keys or package-manager credentials), its
workspace read-write at ``/workspace`` (also ``$HOME``), a private size-capped tmpfs
``/tmp``, a fresh ``/proc`` and a minimal read-only ``/dev`` (its ``/dev/shm`` capped like
``/tmp``). Nothing else of the host exists there:
not the server's data directory or database, not other conversations' workspaces, not
``/root``. Every namespace is new (``--unshare-all``); the network is the factory's
``network`` mode (see :mod:`convo.runtime.network`). A new PID namespace means ``close()`` (which
kills bwrap, whose in-sandbox init then takes every process down with it) leaves nothing
behind, not even processes that called ``setsid``.

When the server runs as root, bwrap itself is started as an unprivileged uid (65534 by
default): the sandbox's processes have that uid on the host too, no capabilities, no
access to root-owned files, and a per-user-namespace process count that RLIMIT_NPROC can
limit. That uid may not be allowed to walk the path to the workspace (``~/.convo`` under
``/root``), so the launcher stages it first (see :mod:`convo.runtime.launcher`); the
workspace is chowned to the uid at start, and files the server creates there get that uid
(:mod:`convo.runtime.workspace`). ``exec`` runs one program in a short-lived sandbox of
its own over the same workspace (the git routes use it).
Resource limits: see :mod:`convo.runtime.limits`; the command lines:
:mod:`convo.runtime.bwrap_argv`.

The launcher and bwrap run with a fixed minimal environment; the conversation's secrets
reach only the shell inside, which exports them after it started
(:func:`convo.runtime.process.export_script`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from convo.errors import SandboxError, SandboxUnavailable
from convo.runtime.base import ExecResult, SandboxSpec
from convo.runtime.bwrap_argv import MOUNT, launch_argv, sandbox_uid
from convo.runtime.exit_record import EXIT_RECORD
from convo.runtime.limits import ResourceLimits, SandboxCgroup
from convo.runtime.network import NetworkMode, isolated_network
from convo.runtime.oneshot import run_once
from convo.runtime.process import clean_env, export_script
from convo.runtime.shell import BashSession
from convo.runtime.shell_sandbox import ShellSandbox, with_disk_limit
from convo.runtime.spawned import ENV_READER, SandboxProcess, spawn_process
from convo.runtime.workspace import Workspace


class BwrapSandbox(ShellSandbox):
    """One conversation's workspace and shell, inside bubblewrap."""

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        bwrap: str = "bwrap",
        network: NetworkMode = "isolated",
        limits: ResourceLimits | None = None,
        uid: int | None = None,
        kill_grace_seconds: float = 1.0,
    ) -> None:
        super().__init__(spec, kill_grace_seconds=kill_grace_seconds)
        self._bwrap = bwrap
        self._network = network
        self._limits = self._guard.limit_files(limits or ResourceLimits())
        self._uid = sandbox_uid(uid)
        self._cgroup: SandboxCgroup | None = None

    @property
    def workspace_path(self) -> str:
        return str(MOUNT)

    @property
    def enforced_limits(self) -> list[str]:
        """The per-sandbox cgroup limits this machine let us set (empty: rlimits only)."""
        return list(self._cgroup.enforced) if self._cgroup else []

    async def start(self) -> None:
        if self._closed:
            raise SandboxError("The sandbox is closed")
        if self._session is not None:
            return
        try:
            argv = await asyncio.to_thread(self._prepare)
            await self._guard.measure(self._root)
            session = BashSession(
                argv,
                cwd=Path("/"),
                env=clean_env(str(MOUNT)),
                start_dir=str(MOUNT),
                default_timeout=self._spec.command_timeout_seconds,
                max_output_chars=self._spec.max_output_chars,
                kill_grace_seconds=self._grace,
                init_script=self._limits.ulimit_script() + export_script(self._spec.env),
                wrapped=True,
                status_file=str(MOUNT / EXIT_RECORD),
            )
            await session.start()
        except SandboxError as exc:
            await self.close()
            raise SandboxUnavailable(f"bubblewrap sandbox failed to start: {exc}") from exc
        except OSError as exc:
            await self.close()
            raise SandboxUnavailable(f"bubblewrap sandbox failed to start: {exc}") from exc
        self._session = session
        self._guard.start(self._root, session)

    def _prepare(self) -> list[str]:
        """Blocking: workspace, ownership, cgroup; returns the launcher command line."""
        self._root.mkdir(parents=True, exist_ok=True)
        self._root = self._root.resolve(strict=True)
        if self._uid >= 0:
            self.workspace.chown_tree(self._uid, self._uid)
        self._cgroup = SandboxCgroup.create(self._label("convo-"), self._limits)
        argv = self._launch_argv(self._root, self._cgroup.procs_files)
        return [*argv, "bash", "--noprofile", "--norc"]

    def _label(self, prefix: str) -> str:
        """A cgroup name for this conversation's sandbox (or one of its programs)."""
        return prefix + re.sub(r"[^A-Za-z0-9_.-]", "_", self._spec.conversation_id)[:64]

    def _launch_argv(self, root: Path, cgroup_procs: list[str]) -> list[str]:
        """Blocking: the launcher command line with the conversation's network mode."""
        isolated = None
        if self._network == "isolated" and self._uid >= 0:
            isolated = isolated_network()
        return launch_argv(
            self._bwrap,
            workspace=root,
            network=self._network,
            tmp_size_bytes=self._limits.tmp_size_bytes,
            uid=self._uid,
            cgroup_procs=cgroup_procs,
            isolated=isolated,
        )

    @property
    def workspace(self) -> Workspace:
        owner = (self._uid, self._uid) if self._uid >= 0 else None
        return Workspace(self._root, agent_root=str(MOUNT), owner=owner)

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - the Sandbox protocol's signature
        max_output_bytes: int = 16 * 1024 * 1024,
    ) -> ExecResult:
        """A short-lived sandbox of its own over the same workspace: same uid, mounts,
        rlimits and cgroup limits (a cgroup of its own), no network; the workspace must
        exist."""
        where = str(MOUNT.joinpath(*self.workspace.parts(cwd)))
        label = self._label("convo-exec-")
        cgroup = await asyncio.to_thread(SandboxCgroup.create, label, self._limits)
        try:
            try:
                root = await asyncio.to_thread(self._root.resolve, True)
                outer = launch_argv(
                    self._bwrap,
                    workspace=root,
                    network="none",
                    tmp_size_bytes=self._limits.tmp_size_bytes,
                    uid=self._uid,
                    cgroup_procs=cgroup.procs_files,
                )
            except OSError as exc:
                raise SandboxError(f"The workspace is not there: {exc}") from exc
            outer[outer.index("--chdir") + 1] = where
            limited = self._limits.ulimit_script() + 'exec "$@"'
            shell = ["/bin/bash", "--noprofile", "--norc", "-c", limited, "bash"]
            return await run_once(
                [*outer, *shell, *argv],
                env=clean_env(str(MOUNT), env or {}),
                cwd=Path("/"),
                timeout=timeout,
                max_output_bytes=max_output_bytes,
            )
        finally:
            await asyncio.to_thread(cgroup.remove)

    async def spawn(
        self, argv: Sequence[str], *, cwd: str = "", env: Mapping[str, str] | None = None
    ) -> SandboxProcess:
        """A sandbox of its own over the same workspace, like ``exec``'s, but long-lived and
        with the conversation's network mode: same uid, mounts, rlimits and cgroup limits (a
        cgroup of its own, removed when the program is closed); the workspace must exist."""
        if self._closed:
            raise SandboxError("The sandbox is closed")
        where = str(MOUNT.joinpath(*self.workspace.parts(cwd)))
        label = self._label("convo-mcp-")
        cgroup = await asyncio.to_thread(SandboxCgroup.create, label, self._limits)

        async def remove_cgroup() -> None:
            await asyncio.to_thread(cgroup.remove)

        try:
            outer = await asyncio.to_thread(self._spawn_argv, cgroup.procs_files)
        except (OSError, SandboxError) as exc:
            await remove_cgroup()
            raise SandboxError(f"Cannot start a program in the sandbox: {exc}") from exc
        outer[outer.index("--chdir") + 1] = where
        script = self._limits.ulimit_script() + ENV_READER
        shell = ["/bin/bash", "--noprofile", "--norc", "-c", script, "bash"]
        process = await spawn_process(
            [*outer, *shell, *argv],
            env=clean_env(str(MOUNT)),
            cwd=Path("/"),
            variables=env or {},
            on_close=remove_cgroup,
        )
        return self._spawned.add(process)

    def _spawn_argv(self, cgroup_procs: list[str]) -> list[str]:
        """Blocking: the launcher command line of a spawned program."""
        return self._launch_argv(self._root.resolve(strict=True), cgroup_procs)

    async def close(self) -> None:
        await self._close_shell()
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is not None:
            await asyncio.to_thread(cgroup.remove)


class BwrapSandboxFactory:
    """Creates bubblewrap sandboxes (runtime ``sandbox``)."""

    name = "sandbox"

    def __init__(
        self,
        *,
        bwrap: str = "bwrap",
        network: NetworkMode = "isolated",
        limits: ResourceLimits | None = None,
        uid: int | None = None,
        kill_grace_seconds: float = 1.0,
        disk_limit_bytes: int | None = None,
    ) -> None:
        self._bwrap = bwrap
        self.disk_limit_bytes = disk_limit_bytes  # for specs that set none
        self.network = network
        self.limits = limits or ResourceLimits()
        self._uid = uid
        self._grace = kill_grace_seconds

    def create(self, spec: SandboxSpec) -> BwrapSandbox:
        return BwrapSandbox(
            with_disk_limit(spec, self.disk_limit_bytes),
            bwrap=self._bwrap,
            network=self.network,
            limits=self.limits,
            uid=self._uid,
            kill_grace_seconds=self._grace,
        )
