"""The terminal client, run as a person runs it: ``python -m convo ...`` subprocesses against a
real server (a ``convo serve`` subprocess on a tmp data dir and a free port, or the embedded
server a command starts itself)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench.harness import ConvoServer, base_env

PYTHON = sys.executable


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def cli_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = base_env()
    env["CONVO_DATA_DIR"] = str(data_dir)
    env["COLUMNS"] = "200"  # rich wraps tables at the terminal's width
    env.update(extra or {})
    return env


async def start_cli(
    args: list[str], env: Mapping[str, str], cwd: Path | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "convo",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 90) -> Result:
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.send_signal(signal.SIGKILL)
        out, err = await process.communicate()
        raise AssertionError(f"convo did not exit in {timeout} s: {out!r} {err!r}") from None
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def convo(
    *args: str, env: Mapping[str, str], timeout: float = 90, cwd: Path | None = None
) -> Result:
    return await finish(await start_cli(list(args), env, cwd), timeout)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def scripted_server(tmp_path: Path, data_dir: Path, llm_base_url: str) -> ConvoServer:
    """``convo serve`` (not started) on ``data_dir``, calling the scripted LLM at
    ``llm_base_url``."""
    return ConvoServer(
        tmp_path / "server",
        {
            "data_dir": str(data_dir),
            "llm_model": "openai/scripted",
            "llm_base_url": llm_base_url,
            "llm_api_key": "scripted-key",
        },
    )


@pytest.fixture
async def demo_server(tmp_path: Path, data_dir: Path) -> AsyncIterator[ConvoServer]:
    """``convo serve`` with the demo model, on its own data dir and a free port."""
    server = ConvoServer(
        tmp_path / "server",
        {"data_dir": str(data_dir), "llm_model": "demo", "shutdown_grace_seconds": "5"},
    )
    await server.start()
    try:
        yield server
    finally:
        await server.terminate()
