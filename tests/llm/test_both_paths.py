"""The light OpenAI-compatible client and the litellm client behave alike.

Each test runs on both paths against the scripted OpenAI-compatible server over real HTTP:
the same answers, errors (convo's LLM error tree, never the key), retries, costs and tool
calls. The light path must not import litellm (checked in a fresh interpreter).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from convo.agent.tools import tool_specs
from convo.errors import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMNotConfigured,
    LLMRateLimitError,
)
from convo.llm.base import LLMClient, LLMConfig
from convo.llm.litellm_client import LiteLLMClient
from convo.llm.openai_compat import OpenAICompatClient
from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import http_error, text, tool_call
from convo.llm.select import LLMClients, Route, route

MESSAGES = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": "List the files."},
]
ClientFor = Callable[..., LLMClient]


@pytest.fixture(params=["light", "litellm"])
async def client_for(request: pytest.FixtureRequest) -> AsyncIterator[ClientFor]:
    clients = LLMClients()

    def build(base_url: str, key: str = "k", **overrides: Any) -> LLMClient:
        settings: dict[str, Any] = {
            "model": "openai/scripted",
            "base_url": base_url,
            "api_key": SecretStr(key),
            "num_retries": 0,
            "timeout_seconds": 10,
        }
        settings.update(overrides)
        config = LLMConfig(**settings)
        if request.param == "litellm":
            return LiteLLMClient(config)
        client = clients(config)
        assert isinstance(client, OpenAICompatClient)
        return client

    yield build
    await clients.aclose()


async def test_tool_call_round_trips_with_tools_and_history(client_for: ClientFor) -> None:
    script = [tool_call("execute_bash", {"command": "ls -la"}, content="Let me look.")]
    async with ScriptedLLMServer(script, api_key="k") as server:
        response = await client_for(server.base_url).complete(MESSAGES, tool_specs())

    assert response.content == "Let me look."
    (call,) = response.tool_calls
    assert call.name == "execute_bash"
    assert json.loads(call.arguments) == {"command": "ls -la"}
    assert call.id == "call_scripted_1"
    assert response.response_id == "chatcmpl-scripted-1"
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.usage.cost == 0.0  # the scripted model has no price
    assert response.usage.latency_seconds > 0

    (sent,) = server.requests
    assert sent["model"] == "scripted"  # the provider prefix is not sent
    assert sent["messages"] == MESSAGES
    assert [t["function"]["name"] for t in sent["tools"]] == [
        t["function"]["name"] for t in tool_specs()
    ]


async def test_plain_text_answer_sends_no_tools(client_for: ClientFor) -> None:
    async with ScriptedLLMServer([text("Hello there")]) as server:
        response = await client_for(server.base_url).complete(MESSAGES, [])
    assert response.content == "Hello there"
    assert response.tool_calls == []
    assert "tools" not in server.requests[0]


async def test_a_known_model_costs_the_same_on_both_paths(client_for: ClientFor) -> None:
    async with ScriptedLLMServer([text("priced")]) as server:
        response = await client_for(server.base_url, model="openai/gpt-4o").complete(MESSAGES, [])
    usage = response.usage
    # gpt-4o in the price map: $2.50 per million input tokens, $10 per million output tokens
    expected = usage.prompt_tokens * 2.5e-06 + usage.completion_tokens * 1e-05
    assert usage.cost == pytest.approx(expected, rel=1e-6)
    assert usage.cost > 0


async def test_a_wrong_key_is_an_authentication_error_without_the_key(
    client_for: ClientFor,
) -> None:
    async with ScriptedLLMServer([text("never")], api_key="right-key") as server:
        with pytest.raises(LLMAuthenticationError) as caught:
            await client_for(server.base_url, key="wrong-key-123").complete(MESSAGES, [])
    assert "wrong-key-123" not in str(caught.value)
    error = caught.value  # no provider exception (which may quote the key) is chained
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, LLMAuthenticationError),
        (403, LLMAuthenticationError),
        (429, LLMRateLimitError),
        (400, LLMBadRequestError),
        (404, LLMBadRequestError),
        (500, LLMError),
    ],
)
async def test_http_errors_map_to_the_error_tree(
    client_for: ClientFor, status: int, error: type[Exception]
) -> None:
    async with ScriptedLLMServer([http_error(status, "scripted failure")]) as server:
        with pytest.raises(error) as caught:
            await client_for(server.base_url).complete(MESSAGES, [])
    assert "scripted failure" in str(caught.value)  # the provider's words reach the user


async def test_a_context_overflow_keeps_the_providers_words(client_for: ClientFor) -> None:
    """The agent condenses on this error: it recognises it by the provider's message."""
    from convo.agent.condenser import is_context_overflow

    message = "This model's maximum context length is 8192 tokens."
    async with ScriptedLLMServer([http_error(400, message)]) as server:
        with pytest.raises(LLMBadRequestError) as caught:
            await client_for(server.base_url).complete(MESSAGES, [])
    assert is_context_overflow(caught.value)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_passing_failure_is_retried(client_for: ClientFor, status: int) -> None:
    async with ScriptedLLMServer([http_error(status), text("second time")]) as server:
        response = await client_for(server.base_url, num_retries=1).complete(MESSAGES, [])
    assert response.content == "second time"
    assert len(server.requests) == 2


async def test_retries_run_out(client_for: ClientFor) -> None:
    script = [http_error(503), http_error(503), text("too late")]
    async with ScriptedLLMServer(script) as server:
        with pytest.raises(LLMError):
            await client_for(server.base_url, num_retries=1).complete(MESSAGES, [])
    assert len(server.requests) == 2


async def test_a_refused_key_is_not_retried(client_for: ClientFor) -> None:
    async with ScriptedLLMServer([http_error(401), text("never")]) as server:
        with pytest.raises(LLMAuthenticationError):
            await client_for(server.base_url, num_retries=2).complete(MESSAGES, [])
    assert len(server.requests) == 1


async def test_an_unreachable_port_is_a_connection_error(client_for: ClientFor) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LLMConnectionError):
        await client_for(f"http://127.0.0.1:{port}/v1").complete(MESSAGES, [])


async def test_a_timeout_is_a_connection_error(client_for: ClientFor) -> None:
    async with ScriptedLLMServer([text("late", delay=3)]) as server:
        with pytest.raises(LLMConnectionError):
            await client_for(server.base_url, timeout_seconds=0.3).complete(MESSAGES, [])


def test_the_light_path_imports_neither_litellm_nor_the_openai_sdk() -> None:
    """A whole call and a context-window lookup, in a fresh interpreter: litellm's import
    alone takes seconds."""
    code = textwrap.dedent(
        """
        import asyncio, sys
        from pydantic import SecretStr
        from convo.llm.base import LLMConfig
        from convo.llm.scripted_server_script import tool_call
        from convo.llm.scripted_server import ScriptedLLMServer
        from convo.llm.select import LLMClients, Route, route

        async def main():
            clients = LLMClients()
            async with ScriptedLLMServer([tool_call("finish", {"message": "ok"})]) as server:
                config = LLMConfig(model="openai/gpt-4o", base_url=server.base_url,
                                   api_key=SecretStr("k"))
                response = await clients(config).complete([{"role": "user", "content": "hi"}], [])
            await clients.aclose()
            assert response.tool_calls[0].name == "finish" and response.usage.cost > 0
            from convo.services.user_config import model_context_window
            assert model_context_window("openai/gpt-4o") == 128000
            print(sorted(m for m in sys.modules if m.split(".")[0] in ("litellm", "openai")))

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


VLLM = "http://127.0.0.1:8000/v1"
OPENAI = "https://api.openai.com/v1"
OLLAMA = "http://127.0.0.1:11434"


@pytest.mark.parametrize(
    ("model", "base_url", "expected"),
    [
        ("openai/gpt-4o", None, Route(False, OPENAI, "gpt-4o")),
        ("gpt-4o", None, Route(False, OPENAI, "gpt-4o")),
        ("openai/qwen", VLLM, Route(False, VLLM, "qwen")),
        ("my-local-model", VLLM, Route(False, VLLM, "my-local-model")),
        ("hosted_vllm/qwen", VLLM, Route(False, VLLM, "qwen")),
        ("ollama/llama3", OLLAMA, Route(False, OLLAMA + "/v1", "llama3")),
        ("openrouter/anthropic/claude-3.5-sonnet", None,
         Route(False, "https://openrouter.ai/api/v1", "anthropic/claude-3.5-sonnet")),
        ("anthropic/claude-3-5-sonnet-20241022", None, Route(True)),
        ("bedrock/anthropic.claude-v2", None, Route(True)),
        ("gemini/gemini-1.5-pro", VLLM, Route(True)),
    ],
)  # fmt: skip
def test_the_route_of_a_model(model: str, base_url: str | None, expected: Route) -> None:
    assert route(LLMConfig(model=model, base_url=base_url)) == expected


async def test_the_factory_builds_the_client_of_the_route() -> None:
    clients = LLMClients()
    try:
        assert isinstance(clients(LLMConfig(model="anthropic/claude-3-opus")), LiteLLMClient)
        assert isinstance(clients(LLMConfig(model="openai/gpt-4o")), OpenAICompatClient)
        with pytest.raises(LLMNotConfigured, match="base URL"):
            clients(LLMConfig(model="hosted_vllm/qwen"))
    finally:
        await clients.aclose()
