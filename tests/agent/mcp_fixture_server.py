"""An MCP server for the tests, written with the SDK's FastMCP.

    python3 mcp_fixture_server.py stdio          # over stdin/stdout
    python3 mcp_fixture_server.py http PORT      # streamable HTTP on 127.0.0.1:PORT/mcp
    python3 mcp_fixture_server.py sse PORT       # SSE on 127.0.0.1:PORT/sse

With FIXTURE_PREFIX in its environment, its tools' names start with it. Its tools report
what only the place it runs in shows (its working directory, pid, the processes it can see),
add numbers, echo a variable of its environment or the request's Authorization header, fail,
or kill the server.
"""

from __future__ import annotations

import os
import sys

from mcp.server.fastmcp import Context, FastMCP

PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
PREFIX = os.environ.get("FIXTURE_PREFIX", "")
server = FastMCP("convo-fixture", host="127.0.0.1", port=PORT)


def tool(function):  # type: ignore[no-untyped-def]
    return server.tool(name=PREFIX + function.__name__)(function)


@tool
def where() -> str:
    """Where this server runs: its working directory, pid and how many processes it sees."""
    visible = [p for p in os.listdir("/proc") if p.isdigit()]
    return f"cwd={os.getcwd()} pid={os.getpid()} processes={len(visible)}"


@tool
def add(a: int, b: int) -> str:
    """Add two integers."""
    return f"sum={a + b}"


@tool
def token() -> str:
    """The value of FIXTURE_TOKEN in this server's environment."""
    return f"token={os.environ.get('FIXTURE_TOKEN', '')}"


@tool
def auth(ctx: Context) -> str:  # type: ignore[type-arg]
    """The Authorization header of the request (over HTTP; empty over stdio)."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None) or {}
    return f"authorization={headers.get('authorization', '')}"


@tool
def fail(reason: str) -> str:
    """Always fails with the reason given."""
    raise ValueError(f"failed on purpose: {reason}")


@tool
def die() -> str:
    """Kills this server at once."""
    os._exit(3)


@tool
def think() -> str:
    """Named like a built-in tool: convo must leave it out."""
    return "never called"


if __name__ == "__main__":
    server.run({"http": "streamable-http", "sse": "sse"}.get(sys.argv[1], "stdio"))
