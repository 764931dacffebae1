"""The persistent-bash protocol shared by the process and bubblewrap sandboxes.

A non-interactive ``bash`` reads commands from a pipe; stdout and stderr come back merged.
Each command is one line, ``builtin source <(builtin printf %s '<command>')`` and then a
``printf`` of a per-command marker (split so it never appears verbatim in the input) with
the exit code and ``$PWD``. Bash parses the whole line before running it, so a command
reading stdin gets only what ``is_input`` sends. ``source`` runs the command in the shell
itself (``cd``, ``export``, ``declare`` persist) and lets the SIGINT trap's ``return 130``
abandon the rest of it, loops included, as Ctrl-C does on an interactive command line.

On timeout, a command blocked reading the shell's stdin (a prompt) is left running for
``is_input`` to answer; anything else gets SIGINT. If the marker does not come back
within a couple of seconds (a loop inside a shell function, a program ignoring SIGINT),
the shell is killed and restarted in the last known directory, and the result says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import shlex
import signal
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from convo.errors import SandboxError
from convo.runtime.base import CommandResult
from convo.runtime.launch import Launched, launch
from convo.runtime.shell_output import Marker, OutputBuffer, marker_line

logger = logging.getLogger(__name__)

_INIT = "trap 'return 130 2>/dev/null' INT\n"  # Ctrl-C abandons the command, not the shell
_RECOVER_SECONDS = 2.0
_START_SECONDS = 15.0


# --- /proc ------------------------------------------------------------------------------
_READ_SYSCALL = {"x86_64": 0, "aarch64": 63}.get(platform.machine())


def group_pids(pgid: int, *, skip_wrapper: bool = False) -> list[int]:
    """The group's processes, zombies left out; ``skip_wrapper`` also leaves out the
    leader and its direct children (bwrap and its in-sandbox init)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, ppid, group = stat.rsplit(")", 1)[1].split()[:3]
            wrapper = skip_wrapper and pgid in (int(entry), int(ppid))
            if int(group) == pgid and state != "Z" and not wrapper:
                pids.append(int(entry))
    return pids


def blocked_reading(pgid: int, stdin_id: str) -> bool:
    """Whether a process of the group sits in read(0) on the pipe ``stdin_id``."""
    if _READ_SYSCALL is None or not stdin_id:
        return False
    for pid in group_pids(pgid):
        try:
            if os.readlink(f"/proc/{pid}/fd/0") != stdin_id:
                continue
            call = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:
            continue
        if len(call) > 1 and call[0] == str(_READ_SYSCALL) and int(call[1], 16) == 0:
            return True
    return False


def _with_note(text: str, note: str) -> str:
    return f"{text}\n{note}" if text else note


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class BashSession:
    """One persistent bash behind ``argv``; commands run one at a time."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        start_dir: str,
        default_timeout: float,
        max_output_chars: int,
        kill_grace_seconds: float = 1.0,
        init_script: str = "",
        wrapped: bool = False,
        pass_fds: Sequence[int] = (),
        status_file: str | None = None,
    ) -> None:
        self._argv = list(argv)
        self._pass_fds = tuple(pass_fds)
        self._status_file = status_file  # as the shell sees it; see EXIT_RECORD
        self._cwd_host = cwd
        self._env = dict(env)
        self._dir = start_dir  # last known working directory, as the shell sees it
        self._default_timeout = default_timeout
        self._max_chars = max_output_chars
        self._grace = kill_grace_seconds
        self._init = _INIT + init_script
        self._wrapped = wrapped  # argv starts bash through a wrapper that signals must skip
        self._lock = asyncio.Lock()
        self._proc: Launched | None = None
        self._ending: asyncio.Task[None] | None = None  # the last shell's kill
        self._reader: asyncio.Task[None] | None = None
        self._out = OutputBuffer(max(2 * max_output_chars, 16_384))
        self._data = asyncio.Event()
        self._eof = False
        self._stdin_id = ""
        self._pending: bytes | None = None  # token of a command still running
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> None:
        async with self._lock:
            await self._launch()

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the Sandbox protocol's signature
        is_input: bool = False,
    ) -> CommandResult:
        async with self._lock:
            if self._closed:
                raise SandboxError("The sandbox is closed")
            if self._proc is None:
                await self._launch()
            limit = self._default_timeout if timeout is None else timeout
            if is_input:
                if self._pending is None:
                    return self._result("ERROR: No command is running to send input to.", 1)
                if await self._send_input(command):
                    result = await self._collect(limit)
                    return dataclasses.replace(result, exit_code=-1)
            elif self._pending is not None:
                return self._result(
                    "ERROR: The previous command is still running and was NOT replaced. "
                    "Send it input with is_input=true, or send C-c (is_input=true) to stop it.",
                    1,
                )
            else:
                self._pending = uuid.uuid4().hex.encode()
                line = f"builtin source <(builtin printf %s {shlex.quote(command)}); "
                await self._write((line + self._end_of_command(self._pending)).encode())
            return await self._collect(limit)

    def _end_of_command(self, token: bytes) -> str:
        """What follows a command on its line: its exit status written to the status file
        by bash itself, the moment the command ends (``runtime.exit_record``), then the
        end marker."""
        if self._status_file is None:
            return marker_line(token, '"$?"')
        record = (
            'builtin printf -v __CONVO_RC %s "$?"; '
            f"builtin printf '%s %s\\n' {token.decode()} \"$__CONVO_RC\" "
            f">| {shlex.quote(self._status_file)} 2>/dev/null; "
        )
        marker = marker_line(token, '"$__CONVO_RC"').rstrip("\n")
        return f"{record}{marker}; builtin unset __CONVO_RC\n"

    async def close(self) -> None:
        """Kill the shell's process group (SIGTERM, then SIGKILL). Idempotent."""
        self._closed = True
        await self._kill()

    # --- internals -------------------------------------------------------------------
    async def _launch(self) -> None:
        try:
            proc = await launch(
                self._argv, cwd=self._cwd_host, env=self._env, pass_fds=self._pass_fds
            )
        except OSError as exc:
            raise SandboxError(f"Cannot start the shell {self._argv[0]!r}: {exc}") from exc
        self._proc, self._eof, self._pending = proc, False, None
        self._out = OutputBuffer(self._out.keep)
        self._reader = asyncio.create_task(self._read(proc.stdout), name=f"shell-{proc.pid}")
        self._stdin_id = proc.stdin_id
        if self._closed:  # close() ran while it started, and found no shell to kill
            await self._kill()
            raise SandboxError("The sandbox is closed")
        token = uuid.uuid4().hex.encode()
        cd = f"cd -- {shlex.quote(self._dir)} 2>/dev/null\n"
        await self._write((self._init + cd + marker_line(token, "0")).encode())
        loop = asyncio.get_running_loop()
        match = await self._wait_marker(token, loop.time() + _START_SECONDS)
        if match is None:
            text = self._out.take(self._max_chars)
            await self._kill()
            raise SandboxError(f"The shell did not start: {text.strip() or 'no output'}")
        self._out.take(self._max_chars, match.end)
        self._dir = match.cwd

    async def _read(self, stream: asyncio.StreamReader) -> None:
        try:
            while chunk := await stream.read(65_536):
                self._out.feed(chunk)
                self._data.set()
        finally:
            self._eof = True
            self._data.set()

    async def _write(self, data: bytes) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            proc.stdin.write(data)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("shell %s closed its stdin", proc.pid)

    async def _send_input(self, text: str) -> bool:
        """Write ``text`` (a line) to the running command, or signal it; True if signalled."""
        keys = {"C-c": signal.SIGINT, "C-z": signal.SIGTSTP, "C-\\": signal.SIGQUIT}
        if text.strip() in keys:
            await self._signal(keys[text.strip()])
            return True
        if text:
            await self._write(text.encode() + (b"" if text.endswith("\n") else b"\n"))
        return False

    async def _signal(self, sig: int) -> None:
        """Signal the shell and its commands (never a wrapper: bwrap dies on SIGINT)."""
        if self._proc is None:
            return
        if not self._wrapped:
            _killpg(self._proc.pid, sig)
            return
        for pid in await asyncio.to_thread(group_pids, self._proc.pid, skip_wrapper=True):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    async def _wait_marker(self, token: bytes, deadline: float) -> Marker | None:
        loop = asyncio.get_running_loop()
        while True:
            match = self._out.find_marker(token)
            if match is not None or self._eof:
                return match
            self._data.clear()
            if loop.time() >= deadline:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._data.wait(), deadline - loop.time())

    def _result(self, output: str, exit_code: int, *, timed_out: bool = False) -> CommandResult:
        return CommandResult(output, exit_code, self._dir, timed_out)

    def _finish(self, match: Marker, note: str = "") -> CommandResult:
        text = self._out.take(self._max_chars, match.start, match.end)
        self._pending = None
        self._dir = match.cwd
        if note:
            return self._result(_with_note(text, note), -1, timed_out=True)
        return self._result(text, match.exit_code)

    async def _collect(self, seconds: float) -> CommandResult:
        token = self._pending
        assert token is not None
        loop = asyncio.get_running_loop()
        match = await self._wait_marker(token, loop.time() + seconds)
        if match is not None:
            return self._finish(match)
        if self._eof:
            return await self._after_exit()
        assert self._proc is not None
        if await asyncio.to_thread(blocked_reading, self._proc.pid, self._stdin_id):
            text = self._out.take(self._max_chars)
            note = (
                f"[The command produced no new output for {seconds:g} seconds and is waiting "
                "for input. Send the input with is_input=true, or send C-c to interrupt it.]"
            )
            return self._result(_with_note(text, note), -1, timed_out=True)
        await self._signal(signal.SIGINT)
        match = await self._wait_marker(token, loop.time() + _RECOVER_SECONDS)
        if match is not None:
            return self._finish(
                match, f"[Command timed out after {seconds:g} seconds and was interrupted (C-c).]"
            )
        if self._eof:
            return await self._after_exit()
        reason = f"Command timed out after {seconds:g} seconds and did not stop after C-c"
        return await self._restart(reason, timed_out=True)

    async def _after_exit(self) -> CommandResult:
        code = await self._proc.wait() if self._proc is not None else -1
        reason = f"The shell exited with code {code} (for example `exit` or `set -e`)"
        return await self._restart(reason, timed_out=False)

    async def _restart(self, reason: str, *, timed_out: bool) -> CommandResult:
        text = self._out.take(self._max_chars)
        if self._closed:  # close() killed the shell under a running command
            return self._result(_with_note(text, "[The sandbox was closed.]"), -1, timed_out=True)
        await self._kill()
        await self._launch()
        note = f"[{reason}; a new shell was started in {self._dir}. Exported variables were lost.]"
        return self._result(_with_note(text, note), -1, timed_out=timed_out)

    async def _kill(self) -> None:
        proc, reader = self._proc, self._reader
        if proc is not None:
            self._proc, self._reader, self._pending = None, None, None
            # Finished even when the caller is cancelled meanwhile (a quota watch closed
            # while it kills its shell); a later close() waits for it.
            self._ending = asyncio.create_task(
                self._end(proc, reader), name=f"shell-{proc.pid}:kill"
            )
        if self._ending is not None:
            await asyncio.shield(self._ending)

    async def _end(self, proc: Launched, reader: asyncio.Task[None] | None) -> None:
        _killpg(proc.pid, signal.SIGTERM)
        proc.stdin.close()
        for _ in range(max(1, int(self._grace / 0.05))):
            if not await asyncio.to_thread(group_pids, proc.pid):
                break
            await asyncio.sleep(0.05)
        _killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        if reader is not None:
            try:
                await asyncio.wait_for(reader, self._grace + 1.0)
            except TimeoutError:
                logger.warning("shell %s: output pipe still open after kill", proc.pid)
        proc.close_pipes()
