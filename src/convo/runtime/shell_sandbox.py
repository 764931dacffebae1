"""What the bubblewrap and the process sandbox share: one conversation's persistent bash
session, the workspace guard (disk quota, file count) watching it, and the programs spawned
beside it.

Each subclass starts the session its own way (:mod:`convo.runtime.bwrap`,
:mod:`convo.runtime.process`); commands, failure reports and the first steps of ``close()``
are the same for both.
"""

from __future__ import annotations

import dataclasses

from convo.errors import SandboxError
from convo.runtime.base import CommandResult, SandboxSpec
from convo.runtime.quota import WorkspaceGuard
from convo.runtime.shell import BashSession
from convo.runtime.spawned import SpawnedSet


def with_disk_limit(spec: SandboxSpec, disk_limit_bytes: int | None) -> SandboxSpec:
    """``spec`` with the factory's disk limit where it sets none itself."""
    if spec.disk_limit_bytes is None:
        return dataclasses.replace(spec, disk_limit_bytes=disk_limit_bytes)
    return spec


class ShellSandbox:
    """The state and the methods both sandboxes with a bash session have in common."""

    def __init__(self, spec: SandboxSpec, *, kill_grace_seconds: float) -> None:
        self._spec = spec
        self._guard = WorkspaceGuard(spec)
        self._grace = kill_grace_seconds
        self._root = spec.workspace.expanduser().absolute()
        self._session: BashSession | None = None
        self._spawned = SpawnedSet()
        self._closed = False

    @property
    def shell_pid(self) -> int | None:
        """The pid (on the host) of the process leading the shell's group, while it runs."""
        return self._session.pid if self._session else None

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the Sandbox protocol's signature
        is_input: bool = False,
    ) -> CommandResult:
        if self._session is None:
            raise SandboxError("The sandbox has not been started")
        self._guard.check()
        return await self._session.run(command, timeout=timeout, is_input=is_input)

    async def wait_failed(self) -> SandboxError:
        return await self._guard.wait_failed()

    async def _close_shell(self) -> None:
        """Mark the sandbox closed; close its spawned programs, its guard and its shell."""
        self._closed = True
        await self._spawned.close()
        await self._guard.close()
        if self._session is not None:
            await self._session.close()
