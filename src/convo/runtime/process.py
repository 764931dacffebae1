"""The unconfined sandbox: a persistent bash running directly on the host.

For machines where bubblewrap cannot run. Nothing stops the agent from reading or writing
outside its workspace through the shell; what it does get is a clean environment (never
the server's own, which may hold secrets), a workspace as its home and start directory,
and a process group that ``close()`` kills as a whole. A process that calls ``setsid``
itself leaves the group and survives ``close()``; only the bubblewrap sandbox (a PID
namespace) catches those.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
from collections.abc import Mapping, Sequence

from convo.errors import SandboxError
from convo.runtime.base import ExecResult, SandboxSpec
from convo.runtime.exit_record import EXIT_RECORD
from convo.runtime.oneshot import run_once
from convo.runtime.shell import BashSession
from convo.runtime.shell_sandbox import ShellSandbox, with_disk_limit
from convo.runtime.spawned import ENV_READER, SandboxProcess, spawn_process
from convo.runtime.workspace import Workspace

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
logger = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def clean_env(
    home: str, extra: Mapping[str, str] | None = None, path: str = DEFAULT_PATH
) -> dict[str, str]:
    """The whole environment of every process started on the host side (the launcher,
    bwrap, the process sandbox's shell): a fixed minimum, never the server's, plus ``extra``
    chosen by the server itself (never the conversation's secrets: see export_script)."""
    env = {
        "PATH": path,
        "LANG": "C.UTF-8",
        "HOME": home,
        "TERM": "dumb",
        "PS1": "",
        "PS2": "",
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise SandboxError(f"Invalid environment variable name or value: {key!r}")
        env[key] = value
    return env


def export_script(variables: Mapping[str, str]) -> str:
    """Shell lines exporting ``variables`` (the conversation's secrets and tokens).

    They go to the shell's stdin as part of its set-up, after it has started: no host-side
    process ever has them in its environment, so no loader or interpreter on the host acts
    on a name such as LD_PRELOAD or BASH_ENV; only the shell's own commands see them. A
    name that is not a shell identifier, or a value with NUL (which no environment can
    hold), is left out with a warning.
    """
    lines = []
    for name, value in variables.items():
        if not _NAME.fullmatch(name) or "\0" in value:
            logger.warning("environment variable %r left out: invalid name or value", name[:64])
            continue
        lines.append(f"export {shlex.quote(f'{name}={value}')}\n")
    return "".join(lines)


class ProcessSandbox(ShellSandbox):
    """One conversation's workspace and shell, without confinement."""

    def __init__(
        self, spec: SandboxSpec, *, bash: str = "bash", kill_grace_seconds: float = 1.0
    ) -> None:
        super().__init__(spec, kill_grace_seconds=kill_grace_seconds)
        self._bash = bash
        self._lifeline: tuple[int, int] | None = None

    @property
    def workspace_path(self) -> str:
        return str(self._root)

    async def start(self) -> None:
        if self._closed:
            raise SandboxError("The sandbox is closed")
        if self._session is not None:
            return
        try:
            await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)
            self._root = await asyncio.to_thread(self._root.resolve, True)
        except OSError as exc:
            raise SandboxError(f"Cannot create the workspace {self._root}: {exc}") from exc
        await self._guard.measure(self._root)
        self._lifeline = os.pipe()  # the server holds the write end until close()
        session = BashSession(
            [self._bash, "--noprofile", "--norc"],
            cwd=self._root,
            env=clean_env(str(self._root)),
            start_dir=str(self._root),
            default_timeout=self._spec.command_timeout_seconds,
            max_output_chars=self._spec.max_output_chars,
            kill_grace_seconds=self._grace,
            init_script=(
                _watchdog(self._lifeline[0])
                + self._guard.ulimit_script()
                + export_script(self._spec.env)
            ),
            pass_fds=(self._lifeline[0],),
            status_file=str(self._root / EXIT_RECORD),
        )
        self._session = session
        await session.start()
        self._guard.start(self._root, session)

    @property
    def workspace(self) -> Workspace:
        return Workspace(self._root, agent_root=str(self._root.resolve()))

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - the Sandbox protocol's signature
        max_output_bytes: int = 16 * 1024 * 1024,
    ) -> ExecResult:
        """Unconfined, like the shell: as the server's user, in the workspace."""
        root = self._root.resolve()
        where = root.joinpath(*self.workspace.parts(cwd))
        return await run_once(
            argv,
            env=clean_env(str(root), env or {}),
            cwd=where,
            timeout=timeout,
            max_output_bytes=max_output_bytes,
        )

    async def spawn(
        self, argv: Sequence[str], *, cwd: str = "", env: Mapping[str, str] | None = None
    ) -> SandboxProcess:
        """Unconfined, like the shell: as the server's user, in the workspace; a watchdog on
        the lifeline kills it with the server (see ``_watchdog``)."""
        if self._closed:
            raise SandboxError("The sandbox is closed")
        if self._lifeline is None:
            raise SandboxError("The sandbox has not been started")
        root = self._root.resolve()
        script = _watchdog(self._lifeline[0]) + ENV_READER
        wrapper = [self._bash, "--noprofile", "--norc", "-c", script, "bash", *argv]
        return self._spawned.add(
            await spawn_process(
                wrapper,
                env=clean_env(str(root)),
                cwd=root.joinpath(*self.workspace.parts(cwd)),
                variables=env or {},
                pass_fds=(self._lifeline[0],),
            )
        )

    async def close(self) -> None:
        await self._close_shell()
        if self._lifeline is not None:
            for fd in self._lifeline:
                os.close(fd)
            self._lifeline = None


def _watchdog(fd: int) -> str:
    """Shell lines that start a watchdog in the shell's process group.

    It blocks reading the lifeline pipe, whose write end only the server holds. When the
    server dies, even by SIGKILL, the kernel closes that end, the read returns, and the
    watchdog kills the whole process group: the shell and everything the agent started in
    it. The shell itself then closes its copy, so the agent's commands never inherit it.
    """
    watch = "trap '' INT QUIT; read -r _ <&3; kill -KILL 0"
    # The lifeline moves to fd 3 (POSIX sh takes single-digit descriptors only), and the
    # watchdog is exec'd into a minimal sh: a forked bash would cost a shell per conversation.
    return (
        f"{{ exec 3<&{fd} {fd}<&-; exec /bin/sh -c {shlex.quote(watch)}; }} "
        ">/dev/null 2>&1 </dev/null &\n"
        f"exec {fd}<&-\n"
    )


class ProcessSandboxFactory:
    """Creates unconfined sandboxes (runtime ``process``)."""

    name = "process"

    def __init__(
        self,
        *,
        bash: str = "bash",
        kill_grace_seconds: float = 1.0,
        disk_limit_bytes: int | None = None,
    ) -> None:
        self._bash = bash
        self._grace = kill_grace_seconds
        self.disk_limit_bytes = disk_limit_bytes  # for specs that set none

    def create(self, spec: SandboxSpec) -> ProcessSandbox:
        return ProcessSandbox(
            with_disk_limit(spec, self.disk_limit_bytes),
            bash=self._bash,
            kill_grace_seconds=self._grace,
        )
