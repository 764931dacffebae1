"""The agent's MCP tools: the user's MCP servers, listed at the loop's start, offered to
the LLM next to the built-in tools, and called as OpenHands' ``call_tool_mcp`` actions.

A tool whose name clashes with a built-in tool (or an earlier server's tool), or that the
LLM API could not take (a name outside ``[A-Za-z0-9_-]{1,64}``, a schema that is no JSON
object or over 32 KiB), is **refused**: left out, with a one-line notice for the user. Names
are never rewritten, so a ``call_tool_mcp`` action names the tool as its server knows it.
Descriptions are cut at 2,000 characters, results at the sandbox's output limit.

A server that fails to start is a notice too; its tools are missing, the loop goes on. A
server that dies later is started again at its next call (once); a call that still fails is
an error observation for the agent. The ``mcp`` SDK is imported only by :meth:`connect`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from convo.agent.tools import TOOL_NAMES
from convo.domain.mcp_config import MCPConfig
from convo.errors import ToolServerError
from convo.runtime.base import Sandbox
from convo.runtime.shell_output import clip_middle

if TYPE_CHECKING:
    from convo.agent.mcp_client import McpConnection, ServerSpec

logger = logging.getLogger(__name__)

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_DESCRIPTION = 2000
MAX_SCHEMA_BYTES = 32 * 1024
MAX_TOOLS = 128
CONNECT_TIMEOUT = 60.0


class McpTools(Protocol):
    """What the agent needs of its MCP tools (:class:`McpToolbox`, or a test's twin)."""

    @property
    def names(self) -> frozenset[str]: ...

    def specs(self) -> list[dict[str, Any]]: ...

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """The result's text; raises ToolServerError."""
        ...


@dataclass(frozen=True)
class McpTool:
    name: str
    description: str
    schema: dict[str, Any]
    server: int  # index into the toolbox's connections

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.schema,
            },
        }


def shown_url(url: str) -> str:
    """A server's URL as messages show it: without credentials, query or fragment, which
    may hold a token."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def server_specs(config: MCPConfig, timeout: float = CONNECT_TIMEOUT) -> list[ServerSpec]:
    from convo.agent.mcp_client import ServerSpec

    specs = [
        ServerSpec(
            label=f"stdio MCP server '{s.name}'",
            kind="stdio",
            command=[s.command, *s.args],
            env={k: v.get_secret_value() for k, v in s.env.items()},
            timeout=timeout,
        )
        for s in config.stdio_servers
    ]
    specs += [
        ServerSpec(
            label=f"SSE MCP server {shown_url(s.url)}",
            kind="sse",
            url=s.url,
            shown_url=shown_url(s.url),
            api_key=s.api_key.get_secret_value() if s.api_key else None,
            timeout=timeout,
        )
        for s in config.sse_servers
    ]
    specs += [
        ServerSpec(
            label=f"MCP server {shown_url(s.url)}",
            kind="shttp",
            url=s.url,
            shown_url=shown_url(s.url),
            api_key=s.api_key.get_secret_value() if s.api_key else None,
            timeout=float(s.timeout or timeout),
        )
        for s in config.shttp_servers
    ]
    return specs


def _refusal(name: str, schema: Any, taken: set[str]) -> str | None:
    if not _TOOL_NAME.fullmatch(name):
        return "its name is not a valid tool name"
    if name in TOOL_NAMES:
        return "its name is a built-in tool's"
    if name in taken:
        return "another MCP server has a tool of that name"
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return "its input schema is not a JSON object schema"
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        return "its input schema is over 32 KiB"
    if len(taken) >= MAX_TOOLS:
        return f"the agent already has {MAX_TOOLS} MCP tools"
    return None


class McpToolbox:
    """The MCP tools of one conversation's loop. Close it when the loop ends."""

    def __init__(self, connections: Sequence[McpConnection], max_output_chars: int) -> None:
        self._connections = list(connections)
        self._max_chars = max_output_chars
        self._tools: dict[str, McpTool] = {}
        self._locks = [asyncio.Lock() for _ in self._connections]
        self.notices: list[str] = []  # one line each, for the user

    @classmethod
    async def connect(
        cls,
        config: MCPConfig,
        sandbox: Sandbox,
        *,
        conversation_id: str,
        max_output_chars: int = 30_000,
        timeout: float = CONNECT_TIMEOUT,  # noqa: ASYNC109 - each server's own bound
    ) -> McpToolbox:
        """Start every server at once and list their tools; failures become notices. The
        SDK is imported in a thread the first time (most of a second: the event loop, and
        every other conversation, carries on meanwhile)."""
        await asyncio.to_thread(importlib.import_module, "convo.agent.mcp_client")
        from convo.agent.mcp_client import McpConnection

        connections = [
            McpConnection(spec, sandbox, conversation_id) for spec in server_specs(config, timeout)
        ]
        box = cls(connections, max_output_chars)
        results = await asyncio.gather(*(c.start() for c in connections), return_exceptions=True)
        for index, (connection, result) in enumerate(zip(connections, results, strict=True)):
            if isinstance(result, ToolServerError):
                box.notices.append(f"MCP tools unavailable: {result}")
            elif isinstance(result, BaseException):
                raise result
            else:
                box._add_tools(index, connection)
        return box

    def _add_tools(self, index: int, connection: McpConnection) -> None:
        for tool in connection.tools:
            reason = _refusal(tool.name, tool.inputSchema, set(self._tools))
            if reason is not None:
                label = connection.spec.label
                self.notices.append(f"MCP tool {tool.name[:64]!r} of {label} left out: {reason}")
                continue
            description = (tool.description or tool.title or tool.name)[:MAX_DESCRIPTION]
            self._tools[tool.name] = McpTool(tool.name, description, tool.inputSchema, index)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._tools)

    def specs(self) -> list[dict[str, Any]]:
        return [tool.spec() for tool in self._tools.values()]

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        tool = self._tools.get(name)
        if tool is None:
            raise ToolServerError(f"No MCP server offers a tool named {name!r}")
        connection = await self._alive(tool.server)
        from convo.agent.mcp_client import result_text

        result = await connection.call(name, arguments)
        text = result_text(result)
        if result.isError:
            text = f"The tool reported an error: {text}"
        return clip_middle("", 0, text, self._max_chars)

    async def _alive(self, index: int) -> McpConnection:
        """The server's connection, started again if it died (a stdio server killed with
        an idle sandbox, an HTTP server restarted)."""
        async with self._locks[index]:
            connection = self._connections[index]
            if connection.alive:
                return connection
            from convo.agent.mcp_client import McpConnection

            logger.info("%s: connecting again", connection.spec.label)
            await connection.close()
            fresh = McpConnection(connection.spec, connection.sandbox, connection.conversation_id)
            self._connections[index] = fresh
            await fresh.start()
            return fresh

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._connections), return_exceptions=True)
