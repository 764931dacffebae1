"""A stdio MCP server goes with a sandbox released while idle, and is started again, in the
new sandbox, at the agent's next call."""

from __future__ import annotations

import sys
from pathlib import Path

from convo.agent.mcp_tools import McpToolbox
from convo.domain.mcp_config import MCPConfig
from convo.runtime.base import SandboxSpec
from convo.runtime.process import ProcessSandboxFactory
from convo.services.idle_sandboxes import ReleasableSandboxes
from convo.services.orphans import ProcessRegistry
from tests.agent.mcp_helpers import FIXTURE
from tests.polling import wait_until
from tests.processes import pid_gone


async def test_a_released_sandbox_takes_its_mcp_server_and_the_next_call_restarts_it(
    tmp_path: Path,
) -> None:
    factory = ReleasableSandboxes(ProcessSandboxFactory(), ProcessRegistry(None))
    sandbox = factory.create(SandboxSpec(conversation_id="c1", workspace=tmp_path / "ws"))
    await sandbox.start()
    config = MCPConfig.parse(
        {
            "stdio_servers": [
                {"name": "f", "command": sys.executable, "args": [str(FIXTURE), "stdio"]}
            ]
        }
    )
    tools = await McpToolbox.connect(config, sandbox, conversation_id="c1", timeout=30)
    try:
        first = dict(p.split("=") for p in (await tools.call("where", {})).split())
        assert await sandbox.release()
        await wait_until(lambda: pid_gone(int(first["pid"])), 5)
        again = dict(p.split("=") for p in (await tools.call("where", {})).split())
        assert again["pid"] != first["pid"] and again["cwd"] == first["cwd"]
    finally:
        await tools.close()
        await sandbox.close()
