"""MCP tools through the official SDK: a stdio server inside the bubblewrap sandbox, a
streamable-HTTP server on 127.0.0.1, and servers that fail."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convo.agent.mcp_tools import McpToolbox
from convo.domain.mcp_config import MCPConfig
from convo.errors import ToolServerError
from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandbox, BwrapSandboxFactory
from convo.runtime.process import ProcessSandboxFactory
from tests.agent.mcp_helpers import FIXTURE, build_site, http_fixture, stage_fixture, stdio_server
from tests.polling import wait_until
from tests.processes import pid_gone

SECRET = "fixture-token-5c1d"


@pytest.fixture(scope="session")
def mcp_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(tmp_path_factory.mktemp("mcp-site"))


@pytest.fixture
async def box(tmp_path: Path, mcp_site: Path) -> AsyncIterator[BwrapSandbox]:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    stage_fixture(workspace, mcp_site)
    sandbox = BwrapSandboxFactory(network="none").create(
        SandboxSpec(conversation_id="c1", workspace=workspace, command_timeout_seconds=10)
    )
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.close()


async def test_a_stdio_server_runs_inside_the_sandbox(box: BwrapSandbox) -> None:
    config = MCPConfig.parse({"stdio_servers": [stdio_server(FIXTURE_TOKEN=SECRET)]})
    tools = await McpToolbox.connect(config, box, conversation_id="c1", timeout=30)
    try:
        assert tools.names == {"where", "add", "auth", "token", "fail", "die"}
        assert await tools.call("auth", {}) == "authorization="  # no HTTP request here
        assert tools.notices == [
            "MCP tool 'think' of stdio MCP server 'fixture' left out: its name is a built-in tool's"
        ]
        spec = next(s for s in tools.specs() if s["function"]["name"] == "add")
        assert spec["function"]["parameters"]["required"] == ["a", "b"]
        # only visible inside: the workspace at /workspace, a PID namespace of its own
        where = await tools.call("where", {})
        fields = dict(part.split("=") for part in where.split())
        assert fields["cwd"] == "/workspace"
        assert int(fields["pid"]) < 10 and int(fields["processes"]) < 10
        assert await tools.call("add", {"a": 2, "b": 3}) == "sum=5"
        assert await tools.call("token", {}) == f"token={SECRET}"
        failed = await tools.call("fail", {"reason": "testing"})
        assert failed.startswith("The tool reported an error") and "testing" in failed
        with pytest.raises(ToolServerError, match="fixture"):
            await tools.call("die", {})
        # a dead server is started again at its next call
        assert await tools.call("add", {"a": 1, "b": 1}) == "sum=2"
    finally:
        await tools.close()


async def test_a_streamable_http_server_on_the_loopback(tmp_path: Path) -> None:
    sandbox = ProcessSandboxFactory().create(
        SandboxSpec(conversation_id="c2", workspace=tmp_path / "ws")
    )
    await sandbox.start()
    async with http_fixture() as url:
        config = MCPConfig.parse({"shttp_servers": [{"url": url, "api_key": "k-123"}]})
        tools = await McpToolbox.connect(config, sandbox, conversation_id="c2", timeout=30)
        try:
            assert "web_add" in tools.names and "web_think" in tools.names
            assert await tools.call("web_add", {"a": 20, "b": 22}) == "sum=42"
        finally:
            await tools.close()
            await sandbox.close()


async def test_servers_that_fail_become_notices(tmp_path: Path) -> None:
    sandbox = ProcessSandboxFactory().create(
        SandboxSpec(conversation_id="c3", workspace=tmp_path / "ws")
    )
    await sandbox.start()
    config = MCPConfig.parse(
        {
            "stdio_servers": [
                {"name": "missing", "command": "no-such-mcp-server"},
                {"name": "noisy", "command": "sh", "args": ["-c", "echo not json; sleep 30"]},
                {"name": "good", "command": sys.executable, "args": [str(FIXTURE), "stdio"]},
            ],
            "sse_servers": ["http://127.0.0.1:9/sse"],
            "shttp_servers": [{"url": "http://u:pw-1f@127.0.0.1:9/mcp?token=q-7d2e", "timeout": 5}],
        }
    )
    tools = await McpToolbox.connect(config, sandbox, conversation_id="c3", timeout=5)
    try:
        unavailable = [n for n in tools.notices if n.startswith("MCP tools unavailable")]
        assert len(unavailable) == 4, tools.notices
        assert any("'missing'" in n and "no-such-mcp-server" in n for n in unavailable)
        assert any("'noisy'" in n for n in unavailable)
        assert any("http://127.0.0.1:9/sse" in n for n in unavailable)
        assert any("http://127.0.0.1:9/mcp failed" in n for n in unavailable)
        assert not any("q-7d2e" in n or "pw-1f" in n for n in tools.notices)  # credentials
        assert "add" in tools.names  # the good one still works
        assert await tools.call("add", {"a": 1, "b": 2}) == "sum=3"
        with pytest.raises(ToolServerError, match="No MCP server offers"):
            await tools.call("nothing", {})
    finally:
        await tools.close()
        await sandbox.close()


async def test_an_sse_server_on_the_loopback(tmp_path: Path) -> None:
    sandbox = ProcessSandboxFactory().create(
        SandboxSpec(conversation_id="c4", workspace=tmp_path / "ws")
    )
    await sandbox.start()
    async with http_fixture(prefix="sse_", transport="sse") as url:
        config = MCPConfig.parse({"sse_servers": [url]})
        tools = await McpToolbox.connect(config, sandbox, conversation_id="c4", timeout=30)
        try:
            assert tools.notices == []
            assert await tools.call("sse_add", {"a": 5, "b": 6}) == "sum=11"
        finally:
            await tools.close()
            await sandbox.close()


async def test_a_loop_stopped_while_connecting_leaves_no_task_or_process(tmp_path: Path) -> None:
    sandbox = ProcessSandboxFactory().create(
        SandboxSpec(conversation_id="c5", workspace=tmp_path / "ws")
    )
    await sandbox.start()
    config = MCPConfig.parse(
        {
            "stdio_servers": [
                {"name": "slow", "command": "sh", "args": ["-c", "echo $$ > pid; exec sleep 60"]}
            ]
        }
    )
    connecting = asyncio.create_task(
        McpToolbox.connect(config, sandbox, conversation_id="c5", timeout=30)
    )
    pid_file = tmp_path / "ws" / "pid"
    await wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10)
    pid = int(pid_file.read_text())
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("mcp:c5:")]
    await wait_until(lambda: pid_gone(pid), 5)
    await sandbox.close()
