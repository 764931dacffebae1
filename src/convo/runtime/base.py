"""The sandbox protocol: one conversation's workspace and its persistent shell."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class CommandResult:
    output: str
    exit_code: int  # -1 when the command timed out or was interrupted
    working_dir: str
    timed_out: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    conversation_id: str
    workspace: Path  # host directory, created if missing
    env: dict[str, str] = field(default_factory=dict)  # extra environment (tokens, secrets)
    command_timeout_seconds: float = 120.0
    max_output_chars: int = 30_000


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

    def host_path(self, path: str) -> Path:
        """Map a path the agent names (absolute, or relative to the workspace) to a host
        path inside the workspace; raises PathOutsideWorkspace otherwise."""

    async def close(self) -> None:
        """Kill the shell and every process it started. Idempotent."""


class SandboxFactory(Protocol):
    name: str  # "process" or "sandbox"

    def create(self, spec: SandboxSpec) -> Sandbox: ...
