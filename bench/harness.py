"""Real processes for benchmarks and crash tests: ``convo serve`` and the scripted LLM server.

Both listen on 127.0.0.1 only. The convo server gets a clean ``CONVO_*`` environment (the
caller's own ``CONVO_*`` variables are dropped) and writes its log to a file in its work
directory. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
import psutil

PYTHON = sys.executable


_compiled = False


def compile_convo() -> None:
    """Byte-compile convo's sources once, as an installed server has them (pip compiles what
    it installs): with PYTHONDONTWRITEBYTECODE set, an editable install would otherwise
    compile every module at every start, and cold-start figures would time the compiler."""
    global _compiled
    if not _compiled:
        import compileall

        import convo

        compileall.compile_dir(Path(convo.__file__).parent, quiet=1)
        _compiled = True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVO_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


class ScriptedLLMProcess:
    """``python -m convo.llm.scripted_server`` with a script of steps (see its docstring)."""

    def __init__(
        self,
        workdir: Path,
        steps: list[dict[str, Any]] | None = None,
        when_exhausted: dict[str, Any] | None = None,
        per_conversation: bool = False,
        scripts: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.workdir = workdir
        self.scripts = scripts or {}  # named scripts, chosen by a [script:NAME] marker
        self.steps = steps or []
        self.per_conversation = per_conversation  # each conversation follows the steps
        self.when_exhausted = when_exhausted or {"tool": "finish", "arguments": {"message": "ok"}}
        self.process: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self) -> ScriptedLLMProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = self.workdir / f"script-{id(self)}.json"
        script.write_text(
            json.dumps(
                {
                    "steps": self.steps,
                    "when_exhausted": self.when_exhausted,
                    "per_conversation": self.per_conversation,
                    "scripts": self.scripts,
                }
            )
        )
        self.process = await asyncio.create_subprocess_exec(
            PYTHON,
            "-m",
            "convo.llm.scripted_server",
            "--port",
            "0",
            "--script",
            str(script),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=base_env(),
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        if not line.startswith(b"listening on "):
            raise RuntimeError(f"scripted LLM server did not start: {line!r}")
        self.base_url = line.decode().split("listening on ", 1)[1].strip()
        return self

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class ConvoServer:
    """``python -m convo serve`` on a fixed port, so that it can be killed and started again."""

    def __init__(self, workdir: Path, settings: dict[str, str], port: int | None = None) -> None:
        self.workdir = workdir
        self.settings = settings
        self.port = port or free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.generation = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 60.0) -> float:
        """Start and wait for the first 200 on /alive; returns the seconds that took."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(compile_convo)
        self.generation += 1
        env = base_env()
        env.update({f"CONVO_{k.upper()}": v for k, v in self.settings.items()})
        log = open(self.workdir / f"server-{self.generation}.log", "wb")
        began = time.perf_counter()
        try:
            self.process = await asyncio.create_subprocess_exec(
                PYTHON,
                "-m",
                "convo",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                stdout=log,
                stderr=log,
                env=env,
            )
        finally:
            log.close()
        async with httpx.AsyncClient(timeout=2) as client:
            deadline = began + timeout
            while time.perf_counter() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"convo exited at start-up: {self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base_url}/alive")).status_code == 200:
                        return time.perf_counter() - began
                await asyncio.sleep(0.01)
        raise RuntimeError(f"convo did not answer /alive in {timeout} s: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / f"server-{self.generation}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def terminate(self, timeout: float = 60.0) -> tuple[float, int | None]:
        """SIGTERM and wait; returns (seconds until it exited, exit code)."""
        if self.process is None or self.process.returncode is not None:
            return 0.0, None if self.process is None else self.process.returncode
        began = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        return time.perf_counter() - began, self.process.returncode

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def footprint(self) -> tuple[float, float, int, float]:
        """(server RSS MB, server + descendants RSS MB, process count incl. the server,
        server + descendants PSS MB: shared pages split fairly between processes)."""
        server = psutil.Process(self.pid)
        own = server.memory_info().rss
        total = own
        proportional = _pss(server)
        children = self.descendants()
        for child in children:
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
                proportional += _pss(child)
        return own / 2**20, total / 2**20, 1 + len(children), proportional / 2**20


def _pss(process: psutil.Process) -> int:
    info = process.memory_full_info()
    return int(getattr(info, "pss", info.rss))


def processes_of_sessions(session_ids: set[int]) -> list[int]:
    """Live (non-zombie) processes whose session is one of ``session_ids``."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(proc.info["pid"]) in session_ids:
                found.append(proc.info["pid"])
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def recorded_shells(data_dir: Path) -> set[int]:
    """The shell pids a server recorded in ``<data dir>/run`` (see convo.services.orphans)."""
    pids = set()
    for path in (data_dir / "run").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids.add(int(path.read_text().split()[0]))
    return pids


async def guarded(figures: dict[str, Any], label: str, work: Awaitable[dict[str, Any]]) -> None:
    """Add ``work``'s figures to ``figures``; a part that fails prints its traceback and is
    listed under ``errors``, so the other parts' figures are still reported."""
    began = time.perf_counter()
    try:
        figures.update(await work)
    except Exception:
        traceback.print_exc()
        figures.setdefault("errors", []).append(label)
    print(f"  {label}: {time.perf_counter() - began:.1f} s", flush=True)
