"""Sandbox.spawn: a long-lived program whose stdin and stdout the server holds.

On bubblewrap the program runs confined like the shell (the workspace at /workspace, its own
PID namespace, never root); its environment reaches only the program; close() kills it.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convo.errors import SandboxError
from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandbox, BwrapSandboxFactory
from convo.runtime.fake import FakeSandbox
from convo.runtime.process import ProcessSandbox, ProcessSandboxFactory
from convo.runtime.spawned import SandboxProcess
from tests.polling import wait_until
from tests.processes import pid_gone

# Answers each line it reads with what it sees: cwd, pid, uid, a variable, the line.
ECHO = (
    "import json, os, sys\n"
    "for line in sys.stdin:\n"
    "    print(json.dumps({'cwd': os.getcwd(), 'pid': os.getpid(), 'uid': os.getuid(),\n"
    "        'token': os.environ.get('MCP_TOKEN'), 'got': line.strip()}), flush=True)\n"
)
SECRET = "tok-spawn-7f3a9c"


def spec(tmp_path: Path) -> SandboxSpec:
    return SandboxSpec(
        conversation_id="c1", workspace=tmp_path / "ws", command_timeout_seconds=10.0
    )


@pytest.fixture
async def bwrap_box(tmp_path: Path) -> AsyncIterator[BwrapSandbox]:
    box = BwrapSandboxFactory(network="none").create(spec(tmp_path))
    await box.start()
    try:
        yield box
    finally:
        await box.close()


@pytest.fixture
async def process_box(tmp_path: Path) -> AsyncIterator[ProcessSandbox]:
    box = ProcessSandboxFactory().create(spec(tmp_path))
    await box.start()
    try:
        yield box
    finally:
        await box.close()


async def ask(process: SandboxProcess, text: str) -> dict[str, object]:
    process.stdin.write(text.encode() + b"\n")
    await process.stdin.drain()
    answer: dict[str, object] = json.loads(await process.stdout.readline())
    return answer


def host_environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


async def test_a_spawned_program_runs_inside_bubblewrap(bwrap_box: BwrapSandbox) -> None:
    process = await bwrap_box.spawn(
        ["python3", "-c", ECHO], env={"MCP_TOKEN": SECRET, "SPACED": "a b\nc"}
    )
    first = await ask(process, "hello")
    assert first["cwd"] == "/workspace"  # not the host's workspace path
    assert isinstance(first["pid"], int) and first["pid"] < 10  # its own PID namespace
    if os.geteuid() == 0:
        assert first["uid"] != 0
    assert first["token"] == SECRET and first["got"] == "hello"
    assert (await ask(process, "again"))["got"] == "again"  # a long-lived conversation
    # the variable never was in a host-side process's environment or command line
    assert SECRET.encode() not in host_environ(process.pid)
    assert SECRET.encode() not in Path(f"/proc/{process.pid}/cmdline").read_bytes()
    await process.close()
    assert pid_gone(process.pid)


async def test_closing_the_sandbox_kills_what_it_spawned(bwrap_box: BwrapSandbox) -> None:
    process = await bwrap_box.spawn(["sleep", "600"])
    assert not pid_gone(process.pid)
    await bwrap_box.close()
    await wait_until(lambda: pid_gone(process.pid), 5)
    with pytest.raises(SandboxError):
        await bwrap_box.spawn(["true"])


async def test_a_subdirectory_and_a_missing_program(bwrap_box: BwrapSandbox) -> None:
    (Path(bwrap_box.workspace.root) / "sub").mkdir()
    process = await bwrap_box.spawn(["python3", "-c", ECHO], cwd="sub")
    assert (await ask(process, "x"))["cwd"] == "/workspace/sub"
    missing = await bwrap_box.spawn(["no-such-mcp-server"])
    assert await missing.stdout.readline() == b""  # it exits; stdout ends
    await wait_until(lambda: "no-such-mcp-server" in missing.stderr_tail(), 5)


async def test_the_process_sandbox_spawns_in_its_workspace(process_box: ProcessSandbox) -> None:
    process = await process_box.spawn(["python3", "-c", ECHO], env={"MCP_TOKEN": SECRET})
    answer = await ask(process, "hi")
    assert answer["cwd"] == process_box.workspace_path and answer["token"] == SECRET
    await process_box.close()
    await wait_until(lambda: pid_gone(process.pid), 5)


async def test_invalid_variable_names_are_refused(process_box: ProcessSandbox) -> None:
    with pytest.raises(SandboxError, match="Invalid environment variable"):
        await process_box.spawn(["true"], env={"A B": "x"})


async def test_the_fake_sandbox_records_and_runs(tmp_path: Path) -> None:
    box = FakeSandbox(tmp_path / "ws")
    await box.start()
    process = await box.spawn(["python3", "-c", ECHO], env={"MCP_TOKEN": "t"})
    assert (await ask(process, "z"))["token"] == "t"
    assert box.spawns == [(["python3", "-c", ECHO], "")]
    await box.close()
    await wait_until(lambda: pid_gone(process.pid), 5)


async def test_a_spawned_program_gets_the_isolated_network(tmp_path: Path) -> None:
    """With CONVO_SANDBOX_NETWORK=isolated (the default; root only) the program has the
    sandbox's own namespace: its loopback is not the host's."""
    if os.geteuid() != 0:
        pytest.skip("the isolated network needs root")
    box = BwrapSandboxFactory(network="isolated").create(spec(tmp_path))
    await box.start()
    try:
        process = await box.spawn(["python3", "-c", ECHO])
        assert (await ask(process, "x"))["cwd"] == "/workspace"
        own = os.readlink("/proc/self/ns/net")
        inside = await box.spawn(["readlink", "/proc/self/ns/net"])
        line = (await inside.stdout.readline()).decode().strip()
        assert line.startswith("net:[") and line != own
    finally:
        await box.close()
