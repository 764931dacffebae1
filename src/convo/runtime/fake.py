"""FakeSandbox: a recording sandbox with canned command results, for tests.

Commands are never executed. Each ``run`` is recorded and answered from, in order of
preference: ``responses`` (exact command → result), the ``script`` queue, then a default
success with empty output. Files are real: ``host_path`` maps the agent's paths into a host
directory (a test's tmp dir), so a file editor works against it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from convo.errors import PathOutsideWorkspace, SandboxError
from convo.runtime.base import CommandResult


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
        self.started = False
        self.closed = False

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

    def host_path(self, path: str) -> Path:
        agent_path = PurePosixPath(path)
        workspace = PurePosixPath(self._workspace_path)
        if agent_path.is_absolute():
            try:
                relative = agent_path.relative_to(workspace)
            except ValueError:
                raise PathOutsideWorkspace(f"{path} is outside the workspace") from None
        else:
            relative = agent_path
        root = self.root.resolve()
        host = (root / relative).resolve()
        if host != root and root not in host.parents:
            raise PathOutsideWorkspace(f"{path} is outside the workspace")
        return host

    async def close(self) -> None:
        self.closed = True
