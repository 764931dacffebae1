"""The agent through the real LiteLLMClient and the scripted OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from convo.domain.conversation import AgentState
from convo.llm.base import LLMConfig
from convo.llm.litellm_client import LiteLLMClient
from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import http_error, text, tool_call
from convo.runtime.fake import FakeSandbox
from tests.agent.conftest import HarnessFactory


# The first LLM call imports litellm, which took 25 s on a loaded two-core machine (about 2 s
# on an idle one): the first wait and the test's budget leave room for it.
@pytest.mark.timeout(150)
async def test_agent_over_http(make_harness: HarnessFactory, sandbox: FakeSandbox) -> None:
    sandbox.responses["echo hi"] = sandbox.result("hi\n")
    script = [
        http_error(401, "bad key"),
        tool_call("execute_bash", {"command": "echo hi"}, content="Running it."),
        tool_call("execute_bash", {"commnd": "typo"}),
        text("Done: it printed hi."),
    ]
    async with ScriptedLLMServer(script, api_key="k") as server:
        llm = LiteLLMClient(
            LLMConfig(
                model="openai/scripted",
                base_url=server.base_url,
                api_key=SecretStr("k"),
                num_retries=0,
            )
        )
        h = make_harness(llm)
        h.send("say hi")
        h.start()
        await h.settle(AgentState.ERROR, timeout=90)
        assert "LLM authentication failed" in str(h.errors()[0].content)
        h.send("try again")
        await h.settle(AgentState.AWAITING_USER_INPUT, timeout=20)

    assert h.of("message")[-1].args is not None
    assert h.of("message")[-1].args["content"] == "Done: it printed hi."
    last = server.requests[-1]["messages"]
    assert [m["role"] for m in last] == [
        "system",
        "user",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert last[3]["content"] == "Running it."
    assert json.loads(last[3]["tool_calls"][0]["function"]["arguments"]) == {"command": "echo hi"}
    assert "hi" in last[4]["content"]
    assert last[6]["content"].startswith("ERROR: Missing required argument")
    assert all(r["tools"] for r in server.requests)
