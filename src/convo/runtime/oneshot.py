"""One program run to completion, for ``Sandbox.exec``: bounded in time and output.

The program leads its own session (process group); on timeout, or when it prints more than
``max_output_bytes``, the whole group is killed. Standard input is ``/dev/null``; standard
output is kept (up to the bound) and standard error is kept short, for error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from convo.errors import SandboxError
from convo.runtime.base import ExecResult

_STDERR_BYTES = 16 * 1024
_DRAIN_SECONDS = 5.0
_CLEANUPS: set[asyncio.Task[None]] = set()  # running clean-ups, kept from the collector


async def _read(stream: asyncio.StreamReader, limit: int, pid: int | None) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes; whether there was more. With a ``pid``, more kills its process
    group; without, the rest is read and dropped."""
    data = bytearray()
    while chunk := await stream.read(64 * 1024):
        data += chunk[: max(0, limit + 1 - len(data))]
        if len(data) > limit and pid is not None:
            _kill_group(pid)
            break
    return bytes(data[:limit]), len(data) > limit


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _drain(*streams: asyncio.StreamReader) -> bool:
    """Read the pipes to their end (their writers are dead), so their transports close; a
    bounded wait, in case something outside the process group still holds one. Whether
    they ended."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            for stream in streams:
                while await stream.read(64 * 1024):
                    pass
    except TimeoutError:
        return False
    return True


async def _finish(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None and process.stderr is not None
    if not await _drain(process.stdout, process.stderr):  # before wait(): it needs them shut
        transport = getattr(process, "_transport", None)  # asyncio offers no public way
        for fd in (1, 2):
            pipe = transport.get_pipe_transport(fd) if transport is not None else None
            if pipe is not None:
                pipe.close()
    await process.wait()


async def run_once(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,  # noqa: ASYNC109 - a bound on the program, not on this coroutine's caller
    max_output_bytes: int,
) -> ExecResult:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise SandboxError(f"Cannot run {argv[0]!r}: {exc}") from exc
    assert process.stdout is not None and process.stderr is not None
    reading = asyncio.gather(
        _read(process.stdout, max_output_bytes, process.pid),
        _read(process.stderr, _STDERR_BYTES, None),
    )
    reading.add_done_callback(lambda done: done.cancelled() or done.exception())
    timed_out = False
    try:
        (stdout, truncated), (stderr, _) = await asyncio.wait_for(reading, timeout)
    except TimeoutError:
        timed_out, stdout, stderr, truncated = True, b"", b"", False
    finally:
        _kill_group(process.pid)  # whatever it left behind; a no-op once all is gone
        reading.cancel()
        # the clean-up runs to its end even if this request is cancelled meanwhile
        cleanup = asyncio.create_task(_finish(process), name=f"oneshot-finish-{process.pid}")
        _CLEANUPS.add(cleanup)
        cleanup.add_done_callback(_CLEANUPS.discard)
        await asyncio.shield(cleanup)
    if timed_out:
        return ExecResult(-1, stdout, stderr, timed_out=True)
    if truncated:
        return ExecResult(-1, stdout, stderr, truncated=True)
    return ExecResult(process.returncode or 0, stdout, stderr)
