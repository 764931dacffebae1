"""FakeSandbox: a recording sandbox with canned command results, for tests.

Shell commands are never executed. Each ``run`` is recorded and answered from, in order of
preference: ``responses`` (exact command → result), the ``script`` queue, then a default
success with empty output. Files are real: ``workspace`` is a host directory (a test's tmp
dir) that the agent names ``/workspace``, so a file editor works against it, and ``exec``
runs its program on the host in that directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from convo.errors import SandboxError
from convo.runtime.base import CommandResult, ExecResult
from convo.runtime.oneshot import run_once
from convo.runtime.process import clean_env
from convo.runtime.spawned import ENV_READER, SandboxProcess, SpawnedSet, spawn_process
from convo.runtime.workspace import Workspace


@dataclass(frozen=True)
class RecordedCommand:
    command: str
    timeout: float | None
    is_input: bool


RunHook = Callable[[RecordedCommand], Awaitable[None]]


class FakeSandbox:
    """A ``Sandbox`` whose shell is a script; its workspace is ``root`` on the host."""

    def __init__(
        self,
        root: Path,
        *,
        workspace_path: str = "/workspace",
        responses: dict[str, CommandResult] | None = None,
        script: Iterable[CommandResult | BaseException] = (),
        on_run: RunHook | None = None,
    ) -> None:
        self.root = root
        self._workspace_path = workspace_path
        self.responses = dict(responses or {})
        self.script: list[CommandResult | BaseException] = list(script)
        self.on_run = on_run
        self.commands: list[RecordedCommand] = []
        self.execs: list[tuple[list[str], str]] = []  # (argv, cwd) of each exec
        self.spawns: list[tuple[list[str], str]] = []  # (argv, cwd) of each spawn
        self._spawned = SpawnedSet()
        self.started = False
        self.closed = False
        self.failure: SandboxError | None = None
        self._failed = asyncio.Event()

    @property
    def workspace_path(self) -> str:
        return self._workspace_path

    async def start(self) -> None:
        if self.closed:
            raise SandboxError("The fake sandbox is closed")
        self.root.mkdir(parents=True, exist_ok=True)
        self.started = True

    def result(
        self,
        output: str = "",
        exit_code: int = 0,
        *,
        timed_out: bool = False,
    ) -> CommandResult:
        """A result in this sandbox's workspace directory."""
        return CommandResult(
            output=output,
            exit_code=exit_code,
            working_dir=self._workspace_path,
            timed_out=timed_out,
        )

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the Sandbox protocol's signature
        is_input: bool = False,
    ) -> CommandResult:
        if self.closed:
            raise SandboxError("The fake sandbox is closed")
        recorded = RecordedCommand(command, timeout, is_input)
        self.commands.append(recorded)
        if self.on_run is not None:
            await self.on_run(recorded)
        if command in self.responses:
            return self.responses[command]
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, BaseException):
                raise item
            return item
        return self.result()

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.root, agent_root=self._workspace_path)

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - the Sandbox protocol's signature
        max_output_bytes: int = 16 * 1024 * 1024,
    ) -> ExecResult:
        """Recorded, then run for real on the host in the workspace (tests only)."""
        self.execs.append((list(argv), cwd))
        return await run_once(
            argv,
            env=clean_env(str(self.root), env or {}),
            cwd=self.root.joinpath(*self.workspace.parts(cwd)),
            timeout=timeout,
            max_output_bytes=max_output_bytes,
        )

    async def spawn(
        self, argv: Sequence[str], *, cwd: str = "", env: Mapping[str, str] | None = None
    ) -> SandboxProcess:
        """Recorded, then started for real on the host in the workspace (tests only)."""
        if self.closed:
            raise SandboxError("The fake sandbox is closed")
        self.spawns.append((list(argv), cwd))
        return self._spawned.add(
            await spawn_process(
                ["bash", "--noprofile", "--norc", "-c", ENV_READER, "bash", *argv],
                env=clean_env(str(self.root)),
                cwd=self.root.joinpath(*self.workspace.parts(cwd)),
                variables=env or {},
            )
        )

    def fail(self, error: SandboxError) -> None:
        """Make ``wait_failed`` return ``error`` (as a workspace over its quota would)."""
        self.failure = error
        self._failed.set()

    async def wait_failed(self) -> SandboxError:
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    async def close(self) -> None:
        self.closed = True
        await self._spawned.close()
