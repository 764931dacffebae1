"""The terminal client shows MCP tool calls and their results."""

from __future__ import annotations

import io

from rich.console import Console

from convo.cli.render import EventPrinter


def test_mcp_calls_and_results_are_shown() -> None:
    out = io.StringIO()
    printer = EventPrinter(Console(file=out, width=120, highlight=False))
    printer.show(
        "event",
        {
            "id": 3,
            "source": "agent",
            "action": "call_tool_mcp",
            "args": {"name": "add", "arguments": {"a": 2, "b": 3}, "thought": "Adding."},
        },
    )
    printer.show(
        "event",
        {
            "id": 4,
            "source": "agent",
            "observation": "mcp",
            "content": "sum=5",
            "extras": {"name": "add", "arguments": {"a": 2, "b": 3}},
        },
    )
    assert out.getvalue().splitlines() == ["Adding.", 'tool add {"a": 2, "b": 3}', "sum=5"]
