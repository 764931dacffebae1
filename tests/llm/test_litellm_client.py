"""LiteLLMClient driven against the scripted OpenAI-compatible server over real HTTP."""

from __future__ import annotations

import json
import socket

import pytest
from pydantic import SecretStr

from convo.agent.tools import tool_specs
from convo.errors import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMRateLimitError,
)
from convo.llm.base import LLMConfig
from convo.llm.litellm_client import LiteLLMClient, make_llm_client
from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import http_error, text, tool_call

MESSAGES = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": "List the files."},
]


def _client(base_url: str, key: str = "k", **overrides: object) -> LiteLLMClient:
    config = LLMConfig(
        model="openai/scripted",
        base_url=base_url,
        api_key=SecretStr(key),
        num_retries=0,
        timeout_seconds=10,
    )
    for name, value in overrides.items():
        object.__setattr__(config, name, value)
    return LiteLLMClient(config)


async def test_tool_call_round_trips_and_the_request_carries_tools_and_history() -> None:
    script = [tool_call("execute_bash", {"command": "ls -la"}, content="Let me look.")]
    async with ScriptedLLMServer(script, api_key="k") as server:
        response = await _client(server.base_url).complete(MESSAGES, tool_specs())

    assert response.content == "Let me look."
    assert len(response.tool_calls) == 1
    call = response.tool_calls[0]
    assert call.name == "execute_bash"
    assert json.loads(call.arguments) == {"command": "ls -la"}
    assert call.id
    assert response.response_id == "chatcmpl-scripted-1"
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.usage.cost == 0.0  # the scripted model has no price
    assert response.usage.latency_seconds > 0

    (request,) = server.requests
    assert request["messages"] == MESSAGES
    names = {tool["function"]["name"] for tool in request["tools"]}
    assert names == {"execute_bash", "str_replace_editor", "think", "finish"}


async def test_plain_text_answer() -> None:
    async with ScriptedLLMServer([text("Hello there")]) as server:
        response = await make_llm_client(
            LLMConfig(
                model="openai/scripted",
                base_url=server.base_url,
                api_key=SecretStr("any"),
                num_retries=0,
            )
        ).complete(MESSAGES, [])
    assert response.content == "Hello there"
    assert response.tool_calls == []
    assert "tools" not in server.requests[0]


async def test_wrong_key_is_an_authentication_error_without_the_key() -> None:
    async with ScriptedLLMServer([text("never")], api_key="right-key") as server:
        with pytest.raises(LLMAuthenticationError) as caught:
            await _client(server.base_url, key="wrong-key-123").complete(MESSAGES, [])
    assert "wrong-key-123" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, LLMAuthenticationError), (429, LLMRateLimitError), (400, LLMBadRequestError)],
)
async def test_http_errors_map_to_the_error_tree(status: int, error: type[Exception]) -> None:
    async with ScriptedLLMServer([http_error(status, "scripted failure")]) as server:
        with pytest.raises(error):
            await _client(server.base_url).complete(MESSAGES, [])


async def test_unreachable_port_is_a_connection_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LLMConnectionError):
        await _client(f"http://127.0.0.1:{port}/v1").complete(MESSAGES, [])


async def test_a_timeout_is_a_connection_error() -> None:
    async with ScriptedLLMServer([text("late", delay=3)]) as server:
        with pytest.raises(LLMConnectionError):
            await _client(server.base_url, timeout_seconds=0.3).complete(MESSAGES, [])
