"""Sandboxes that a conversation gives back while it is idle, and gets back when it works.

A finished or waiting conversation keeps its loop (and its listeners), but after
``CONVO_SANDBOX_IDLE_SECONDS`` without work its sandbox is released: the shell and every
process it started are killed. The next time the agent runs a command (after the user's next
message or a start), a new sandbox is started over the same workspace, so its files are all
there; what lived only in the old shell (its working directory, exported variables,
background processes) is gone, as after a restart.

``ReleasableSandboxes`` wraps the runtime's factory; each ``ReleasableSandbox`` it makes
follows the Sandbox protocol by delegating to the current real sandbox. File access
(``workspace``) and ``exec`` work on a released sandbox without starting its shell.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

from convo.errors import SandboxError
from convo.runtime.base import CommandResult, ExecResult, Sandbox, SandboxFactory, SandboxSpec
from convo.runtime.spawned import SandboxProcess
from convo.runtime.workspace import Workspace
from convo.services.orphans import ProcessRegistry

logger = logging.getLogger(__name__)


class ReleasableSandbox:
    def __init__(
        self, factory: SandboxFactory, spec: SandboxSpec, processes: ProcessRegistry
    ) -> None:
        self._factory = factory
        self._spec = spec
        self._processes = processes
        self._inner: Sandbox = factory.create(spec)
        self._started = False
        self._closed = False
        self._busy = 0  # commands running now
        self._lock = asyncio.Lock()  # starting, releasing and closing, one at a time
        self.last_used = time.monotonic()
        self.releases = 0  # for tests and benchmarks
        self._replaced = asyncio.Event()  # set when release() puts a new sandbox in place

    @property
    def released(self) -> bool:
        """Its shell is not running (released, or not started yet)."""
        return not self._started

    @property
    def shell_pid(self) -> int | None:
        pid = getattr(self._inner, "shell_pid", None)
        return pid if isinstance(pid, int) else None

    @property
    def workspace_path(self) -> str:
        return self._inner.workspace_path

    @property
    def workspace(self) -> Workspace:
        return self._inner.workspace

    async def start(self) -> None:
        async with self._lock:
            await self._start()

    async def _start(self) -> None:
        if self._started:
            return
        if self._closed:
            raise SandboxError("The sandbox is closed")
        await self._inner.start()
        self._started = True
        self._processes.register(self._spec.conversation_id, self.shell_pid)

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the tool's own per-command timeout
        is_input: bool = False,
    ) -> CommandResult:
        async with self._lock:
            if not self._started:
                logger.info("sandbox of %s: started again", self._spec.conversation_id)
                await self._start()
            self._busy += 1
        try:
            return await self._inner.run(command, timeout=timeout, is_input=is_input)
        finally:
            self._busy -= 1
            self.last_used = time.monotonic()

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - a bound on the program
        max_output_bytes: int = 16 * 1024 * 1024,
    ) -> ExecResult:
        return await self._inner.exec(
            argv, cwd=cwd, env=env, timeout=timeout, max_output_bytes=max_output_bytes
        )

    async def spawn(
        self, argv: Sequence[str], *, cwd: str = "", env: Mapping[str, str] | None = None
    ) -> SandboxProcess:
        """In whichever sandbox is current, started again if it was released: a release
        kills the program with the rest (an MCP server is started again at its next use)."""
        async with self._lock:
            if not self._started:
                await self._start()
        self.last_used = time.monotonic()
        return await self._inner.spawn(argv, cwd=cwd, env=env)

    async def wait_failed(self) -> SandboxError:
        """The failure of whichever sandbox is current (a release puts a new one in place)."""
        while True:
            name = self._spec.conversation_id
            failed = asyncio.create_task(self._inner.wait_failed(), name=f"failure:{name}")
            replaced = asyncio.create_task(self._replaced.wait(), name=f"replaced:{name}")
            try:
                await asyncio.wait((failed, replaced), return_when=asyncio.FIRST_COMPLETED)
                if failed.done():
                    return failed.result()
            finally:
                for task in (failed, replaced):
                    task.cancel()
                await asyncio.gather(failed, replaced, return_exceptions=True)
            self._replaced.clear()

    async def release(self) -> bool:
        """Kill the shell and its processes unless a command runs; True if released now.
        The workspace stays; a fresh (not started) sandbox over it takes the old one's place."""
        async with self._lock:
            if not self._started or self._busy or self._closed:
                return False
            await self._inner.close()
            self._processes.unregister(self._spec.conversation_id)
            self._inner = self._factory.create(self._spec)
            self._replaced.set()
            self._started = False
            self.releases += 1
        logger.info("sandbox of %s: released while idle", self._spec.conversation_id)
        return True

    async def close(self) -> None:
        """For good (the loop ends). Does not wait for a command in progress."""
        self._closed = True
        self._started = False
        await self._inner.close()


class ReleasableSandboxes:
    """The runtime's factory, making sandboxes that can be released while idle."""

    def __init__(self, factory: SandboxFactory, processes: ProcessRegistry) -> None:
        self._factory = factory
        self._processes = processes
        self.name = factory.name

    def create(self, spec: SandboxSpec) -> ReleasableSandbox:
        return ReleasableSandbox(self._factory, spec, self._processes)
