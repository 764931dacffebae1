"""Long-lived programs in a sandbox, for ``Sandbox.spawn``: stdin and stdout are pipes the
server holds (an MCP stdio server speaks JSON-RPC over them).

The program leads its own session (process group), started through a small bash wrapper
that first reads its environment from stdin: NUL-terminated ``NAME=value`` pairs, then an
empty one. So no host-side process (the launcher, bwrap) ever carries those values in its
environment, as for the shell's secrets (:func:`convo.runtime.process.export_script`), and
they do not show on any command line. Bash's ``read`` takes one byte at a time from a pipe:
whatever follows the empty pair is left for the program.

``close()`` shuts stdin, gives the program a moment to exit, then kills its whole group;
the sandbox's ``close()`` closes every process it spawned. Standard error is kept short (its
last few KiB), for error messages; standard output is read by the caller, one line at most
``LINE_LIMIT`` bytes (a longer one fails the read rather than filling the server's memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from convo.errors import SandboxError

logger = logging.getLogger(__name__)

LINE_LIMIT = 8 * 1024 * 1024
_STDERR_TAIL = 4096
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# bash -c ENV_READER bash PROGRAM ARGS...: export the pairs read from stdin, then exec.
ENV_READER = (
    'while IFS= read -r -d "" pair && [ -n "$pair" ]; do export "$pair" || exit 97; done\n'
    'exec "$@"\n'
)


def env_frames(variables: Mapping[str, str]) -> bytes:
    """What the wrapper reads: ``NAME=value\\0`` per variable, then ``\\0``. Raises
    SandboxError for a name that is no shell identifier or a value with NUL."""
    frames = bytearray()
    for name, value in variables.items():
        if not _NAME.fullmatch(name) or "\0" in value:
            raise SandboxError(f"Invalid environment variable for a program: {name[:64]!r}")
        frames += f"{name}={value}".encode() + b"\0"
    return bytes(frames + b"\0")


class SandboxProcess:
    """One program started by ``Sandbox.spawn``."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        on_close: Callable[[], Awaitable[None]] | None = None,
        grace_seconds: float = 1.0,
    ) -> None:
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        self._process = process
        self._on_close = on_close
        self._grace = grace_seconds
        self._stderr = bytearray()
        self._closed = False
        self._stderr_task = asyncio.create_task(
            self._keep_stderr(process.stderr), name=f"spawned-stderr-{process.pid}"
        )

    @property
    def pid(self) -> int:
        """The host pid of the group's leader (the wrapper, or the sandbox's launcher)."""
        return self._process.pid

    @property
    def stdin(self) -> asyncio.StreamWriter:
        assert self._process.stdin is not None
        return self._process.stdin

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self._process.stdout is not None
        return self._process.stdout

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def stderr_tail(self) -> str:
        """The last few KiB the program wrote to standard error."""
        return self._stderr.decode("utf-8", "replace")

    async def wait(self) -> int:
        return await self._process.wait()

    async def _keep_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(64 * 1024):
            self._stderr += chunk
            del self._stderr[: max(0, len(self._stderr) - _STDERR_TAIL)]

    async def close(self) -> None:
        """Shut stdin, wait a moment, then kill the whole group. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, RuntimeError):
            self.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), self._grace)
        except TimeoutError:
            pass
        _kill_group(self.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), self._grace)
        except TimeoutError:
            pass
        _kill_group(self.pid, signal.SIGKILL)
        await self._process.wait()
        self._stderr_task.cancel()
        await asyncio.gather(self._stderr_task, return_exceptions=True)
        if self._on_close is not None:
            await self._on_close()


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def spawn_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    variables: Mapping[str, str],
    on_close: Callable[[], Awaitable[None]] | None = None,
    pass_fds: Sequence[int] = (),
) -> SandboxProcess:
    """Start ``argv`` (ending in a bash running :data:`ENV_READER`) with ``env`` as its
    host-side environment, then send it ``variables`` on stdin."""
    frames = env_frames(variables)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            limit=LINE_LIMIT,
            pass_fds=tuple(pass_fds),
        )
    except OSError as exc:
        if on_close is not None:
            await on_close()
        raise SandboxError(f"Cannot start {argv[0]!r}: {exc}") from exc
    spawned = SandboxProcess(process, on_close=on_close)
    try:
        spawned.stdin.write(frames)
        await spawned.stdin.drain()
    except (BrokenPipeError, ConnectionResetError) as exc:
        await spawned.close()
        detail = spawned.stderr_tail().strip()
        raise SandboxError(f"The program exited at once: {detail or exc}") from exc
    return spawned


class SpawnedSet:
    """The processes one sandbox spawned, closed with it."""

    def __init__(self) -> None:
        self._processes: set[SandboxProcess] = set()

    def add(self, process: SandboxProcess) -> SandboxProcess:
        self._processes = {p for p in self._processes if not p.closed}
        self._processes.add(process)
        return process

    async def close(self) -> None:
        processes, self._processes = list(self._processes), set()
        await asyncio.gather(*(p.close() for p in processes), return_exceptions=True)
