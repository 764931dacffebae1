"""The sandbox protocol: one conversation's workspace and its persistent shell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from convo.errors import SandboxError
from convo.runtime.spawned import SandboxProcess
from convo.runtime.workspace import Workspace


@dataclass(frozen=True)
class CommandResult:
    output: str
    exit_code: int  # -1 when the command timed out or was interrupted
    working_dir: str
    timed_out: bool = False


@dataclass(frozen=True)
class ExecResult:
    """What ``Sandbox.exec`` ran: exit code -1 when it timed out or printed too much."""

    exit_code: int
    stdout: bytes
    stderr: bytes = b""
    timed_out: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    conversation_id: str
    workspace: Path  # host directory, created if missing
    env: dict[str, str] = field(default_factory=dict)  # extra environment (tokens, secrets)
    command_timeout_seconds: float = 120.0
    max_output_chars: int = 30_000
    disk_limit_bytes: int | None = None  # the workspace's quota (see runtime.quota)


class Sandbox(Protocol):
    @property
    def workspace_path(self) -> str:
        """The workspace's path as the agent sees it (its shell's start directory)."""

    async def start(self) -> None:
        """Create the workspace and the shell; raises SandboxError on failure."""

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the tool's own per-command timeout
        is_input: bool = False,
    ) -> CommandResult:
        """Run one command in the persistent shell; cwd and environment persist.

        ``is_input`` sends the text to a still-running command instead. On timeout the
        command is interrupted (Ctrl-C) and the result has ``timed_out`` and exit code -1.
        """

    @property
    def workspace(self) -> Workspace:
        """The workspace as the server may touch it: descriptor-relative, no-follow access
        (``convo.runtime.workspace``); files it creates get the sandbox's owner. Works
        whether or not the sandbox was started."""

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - a bound on the program
        max_output_bytes: int = 16 * 1024 * 1024,
    ) -> ExecResult:
        """Run one program with the sandbox's confinement and rights, outside its shell.

        ``cwd`` is relative to the workspace; the environment is a fixed minimum plus
        ``env``, never the conversation's secrets. Works whether or not the sandbox was
        started (a short-lived confinement of its own). Raises SandboxError when it cannot.
        """

    async def spawn(
        self, argv: Sequence[str], *, cwd: str = "", env: Mapping[str, str] | None = None
    ) -> SandboxProcess:
        """Start a long-lived program with the sandbox's confinement and rights (its
        workspace, user, limits and network), outside its shell; its stdin and stdout are
        pipes the server holds (``convo.runtime.spawned``). ``cwd`` is relative to the
        workspace; ``env`` reaches only the program, never a host-side process. The sandbox's
        ``close()`` kills it, as the server's death does. The sandbox must have been started.
        Raises SandboxError when it cannot start."""

    async def wait_failed(self) -> SandboxError:
        """Return (never raise) the error once the sandbox can no longer be used: its
        workspace went over its disk quota and its commands were stopped. Waits forever
        while nothing is wrong; the conversation's loop races it against the agent."""

    async def close(self) -> None:
        """Kill the shell and every process it started. Idempotent."""


class SandboxFactory(Protocol):
    name: str  # "process" or "sandbox"

    def create(self, spec: SandboxSpec) -> Sandbox: ...
