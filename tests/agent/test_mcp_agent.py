"""The agent loop with MCP tools (an in-memory twin of the servers): confirmation mode,
errors, and tools that vanished."""

from __future__ import annotations

from typing import Any

from convo.agent.controller import AgentConfig
from convo.domain.conversation import AgentState
from convo.errors import ToolServerError
from convo.llm.scripted import ScriptedLLM, tool_response
from tests.agent.conftest import HarnessFactory


class TwinTools:
    """McpTools in memory: ``lookup`` answers, ``broken`` fails like a dead server."""

    names = frozenset({"lookup", "broken"})

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def specs(self) -> list[dict[str, Any]]:
        schema = {"type": "object", "properties": {"q": {"type": "string"}}}
        return [
            {"type": "function", "function": {"name": n, "description": n, "parameters": schema}}
            for n in sorted(self.names)
        ]

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        self.calls.append((name, arguments))
        if name == "broken":
            raise ToolServerError("stdio MCP server 'twin' disconnected during the call")
        return f"found {arguments.get('q')}"


async def test_mcp_calls_wait_for_confirmation(make_harness: HarnessFactory) -> None:
    tools = TwinTools()
    llm = ScriptedLLM(
        [
            tool_response("lookup", {"q": "a"}),
            tool_response("lookup", {"q": "b"}),
            tool_response("finish", {"message": "done"}),
        ]
    )
    h = make_harness(llm, config=AgentConfig(confirmation_mode=True), mcp=tools)
    h.send("Look things up.")
    h.start()
    await h.settle(AgentState.AWAITING_USER_CONFIRMATION)
    [waiting] = h.of("call_tool_mcp")
    assert waiting.args is not None
    assert waiting.args["confirmation_state"] == "awaiting_confirmation"
    assert tools.calls == []  # not called before the user decides

    h.set_state(AgentState.USER_CONFIRMED)
    await h.settle(AgentState.AWAITING_USER_CONFIRMATION)
    assert tools.calls == [("lookup", {"q": "a"})]
    [result] = h.of("mcp")
    assert result.content == "found a" and result.extras == {
        "name": "lookup",
        "arguments": {"q": "a"},
    }

    h.set_state(AgentState.USER_REJECTED)
    await h.settle(AgentState.AWAITING_USER_INPUT)
    assert tools.calls == [("lookup", {"q": "a"})]  # the second call was rejected
    assert h.of("user_rejected")
    assert {t["function"]["name"] for t in llm.requests[0].tools} >= {"lookup", "execute_bash"}


async def test_a_failing_server_is_an_error_observation_and_the_loop_goes_on(
    make_harness: HarnessFactory,
) -> None:
    tools = TwinTools()
    llm = ScriptedLLM(
        [
            tool_response("broken", {}),
            tool_response("lookup", {"q": "x"}),
            tool_response("finish", {"message": "done"}),
        ]
    )
    h = make_harness(llm, mcp=tools)
    h.send("Try.")
    h.start()
    await h.settle(AgentState.FINISHED)
    [error] = h.errors()
    assert error.content == (
        "MCP broken failed: stdio MCP server 'twin' disconnected during the call"
    )
    assert error.tool_call_metadata is not None  # the LLM gets it as the call's result
    assert [e.content for e in h.of("mcp")] == ["found x"]


async def test_an_mcp_tool_unknown_to_this_loop_is_a_bad_tool_call(
    make_harness: HarnessFactory,
) -> None:
    llm = ScriptedLLM(
        [tool_response("lookup", {"q": "a"}), tool_response("finish", {"message": "done"})]
    )
    h = make_harness(llm)  # no MCP servers
    h.send("Try.")
    h.start()
    await h.settle(AgentState.FINISHED)
    [error] = h.errors()
    assert str(error.content).startswith("Unknown tool 'lookup'")
    assert h.of("call_tool_mcp") == []
