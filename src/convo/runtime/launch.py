"""Starting a long-lived child process without stalling the event loop.

``asyncio.create_subprocess_exec`` forks in the event loop's thread and, under uvloop (which
uvicorn runs on), waits there until the child has exec'd: with a server of 100 MB or more on
a busy machine that held the loop for 15-50 ms per shell, so every request in flight waited
behind each conversation that started. Here ``subprocess.Popen`` (vfork, then exec) runs in
a worker thread, and its pipes are handed to the loop as streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any


class Launched:
    """A started process: ``pid``, ``stdin`` and ``stdout`` streams, ``wait()``."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        read_transport: asyncio.ReadTransport,
        stdin_id: str,
    ) -> None:
        self._popen = popen
        self._read_transport = read_transport
        self.pid = popen.pid
        self.stdin = stdin
        self.stdout = stdout
        self.stdin_id = stdin_id  # as /proc/PID/fd/0 of the child shows it: pipe:[inode]

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def close_pipes(self) -> None:
        """Close both pipes' transports (idempotent)."""
        self.stdin.close()
        self._read_transport.close()

    async def wait(self) -> int:
        """The exit status (reaps the process); waits in a thread while it still runs."""
        code = self._popen.poll()
        if code is not None:
            return code
        return await asyncio.to_thread(self._popen.wait)


async def launch(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
) -> Launched:
    """Start ``argv`` in a new session with stdin and stdout (stderr merged) as pipes.
    Raises OSError as ``Popen`` does."""
    starting = asyncio.ensure_future(
        asyncio.to_thread(
            subprocess.Popen,
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    )
    try:
        popen = await asyncio.shield(starting)
    except asyncio.CancelledError:
        # the worker thread starts it all the same: kill and reap it, then give up
        with contextlib.suppress(BaseException):
            await _discard(await starting)
        raise
    assert popen.stdin is not None and popen.stdout is not None
    stdin_id = f"pipe:[{os.fstat(popen.stdin.fileno()).st_ino}]"
    loop = asyncio.get_running_loop()
    stdin, stdout = _for_transport(loop, popen.stdin), _for_transport(loop, popen.stdout)
    try:
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), stdout
        )
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), stdin
        )
    except BaseException:
        await _discard(popen)
        raise
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return Launched(popen, writer, reader, read_transport, stdin_id)


async def _discard(popen: subprocess.Popen[bytes]) -> None:
    """Kill a process started here that will not be used, reap it, close its pipes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    await asyncio.to_thread(popen.wait)
    for pipe in (popen.stdin, popen.stdout):
        if pipe is not None:
            pipe.close()


class _Descriptor:
    """A pipe end for a uvloop transport. libuv closes the descriptor itself, then uvloop
    calls the object's close() too, which for a file object would close the same number a
    second time, by then possibly another thread's file: this close() does nothing."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        pass


def _for_transport(loop: asyncio.AbstractEventLoop, file: IO[bytes]) -> Any:
    """What the loop's pipe transport takes: asyncio's closes the file object it is given;
    uvloop's closes the descriptor, which the file object must then no longer hold."""
    if type(loop).__module__.startswith("uvloop"):
        fd = os.dup(file.fileno())
        file.close()
        return _Descriptor(fd)
    return file
