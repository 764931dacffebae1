"""Condensation: older events are summarised into one condensation event; the stored log
keeps everything, and the next LLM request is smaller and holds the summary."""

from __future__ import annotations

import json
from typing import Any

from convo.agent.condenser import CondenserConfig, view
from convo.agent.controller import AgentConfig
from convo.agent.history import build_messages
from convo.domain.conversation import AgentState
from convo.errors import LLMBadRequestError
from convo.llm.base import LLMResponse
from convo.llm.scripted import ScriptedLLM, ScriptedRequest, text_response, tool_response
from convo.runtime.fake import FakeSandbox
from tests.agent.conftest import HarnessFactory


class SummarisingLLM(ScriptedLLM):
    """Scripted agent steps; summary requests (no tools) are answered SUMMARY-<n>."""

    def __init__(self, script: list[LLMResponse | BaseException]) -> None:
        super().__init__(script)
        self.summaries: list[ScriptedRequest] = []

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> LLMResponse:
        if not tools:
            self.summaries.append(ScriptedRequest(messages, tools))
            return text_response(f"SUMMARY-{len(self.summaries)}")
        return await super().complete(messages, tools)


def _bash(n: int) -> LLMResponse:
    return tool_response("execute_bash", {"command": f"echo step-{n}"})


def _size(request: ScriptedRequest) -> int:
    return len(json.dumps(request.messages))


async def test_history_over_the_event_limit_is_summarised(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    sandbox.script = [sandbox.result(f"output {n} " + "o" * 400) for n in range(5)]
    llm = SummarisingLLM(
        [_bash(n) for n in range(1, 6)] + [tool_response("finish", {"message": "done"})]
    )
    config = AgentConfig(condenser=CondenserConfig(max_events=6))
    h = make_harness(llm, config=config)
    h.send("Do five steps.")
    h.start()
    await h.settle(AgentState.FINISHED)

    condensations = h.of("condensation")
    assert condensations, "no condensation happened"
    first = condensations[0]
    args = first.args or {}
    assert args["summary"] == "SUMMARY-1" and args["summary_offset"] == 1
    assert args["forgotten_event_ids"] is None
    forgotten = range(args["forgotten_events_start_id"], args["forgotten_events_end_id"] + 1)
    step_1 = next(e for e in h.of("run") if e.is_action)
    assert step_1.id in forgotten
    # the summariser saw the forgotten step
    assert "echo step-1" in json.dumps(llm.summaries[0].messages)

    # the request after the condensation is smaller than it would have been, holds the summary
    before, after = llm.requests[2], llm.requests[3]
    uncondensed = build_messages(h.agent.system_prompt, h.events[: first.id])
    assert _size(after) < len(json.dumps(uncondensed)) - 400
    assert after.messages[1] == {"role": "user", "content": "Do five steps."}
    assert "SUMMARY-1" in after.messages[2]["content"] and after.messages[2]["role"] == "user"
    assert "echo step-1" not in json.dumps(after.messages)
    assert "echo step-1" in json.dumps(before.messages)
    # a later summary replaces the earlier one in the view
    if len(condensations) > 1:
        last = llm.requests[-1].messages
        assert "SUMMARY-1" not in json.dumps(last) and "SUMMARY-" in json.dumps(last)

    # the stored log keeps every event
    commands = [(e.args or {}).get("command") for e in h.of("run") if e.is_action]
    assert commands == [f"echo step-{n}" for n in range(1, 6)]
    assert [e.id for e in h.events] == list(range(len(h.events)))


async def test_a_restarted_agent_sees_the_condensed_view(make_harness: HarnessFactory) -> None:
    llm = SummarisingLLM([_bash(n) for n in range(1, 5)] + [text_response("paused here")])
    first = make_harness(llm, config=AgentConfig(condenser=CondenserConfig(max_events=6)))
    first.send("Work.")
    first.start()
    await first.settle(AgentState.AWAITING_USER_INPUT)
    await first.stop()
    assert first.of("condensation")

    resumed_llm = ScriptedLLM([text_response("ok")])
    second = make_harness(resumed_llm, history=list(first.events))
    second.send("Go on.")
    second.start()
    await second.settle(AgentState.AWAITING_USER_INPUT)
    messages = json.dumps(resumed_llm.requests[0].messages)
    assert "SUMMARY-" in messages and "echo step-1" not in messages
    visible = view(second.events)
    assert len(visible) < len(second.events)


async def test_a_large_context_is_condensed_by_its_token_estimate(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    sandbox.script = [sandbox.result("x" * 12_000) for _ in range(7)]
    lookups: list[str] = []

    def window() -> int:
        lookups.append("looked up")
        return 20_000

    llm = SummarisingLLM(
        [_bash(n) for n in range(1, 8)] + [tool_response("finish", {"message": "ok"})]
    )
    config = AgentConfig(condenser=CondenserConfig(max_events=None, context_window=window))
    h = make_harness(llm, config=config)
    h.send("Read big outputs.")
    h.start()
    await h.settle(AgentState.FINISHED)
    assert lookups == ["looked up"]  # once, and only when the request got large
    assert h.of("condensation")
    assert all(_size(r) // 4 < 20_000 for r in llm.requests)  # never over the window


async def test_small_requests_never_look_up_the_window(make_harness: HarnessFactory) -> None:
    def window() -> int:
        raise AssertionError("looked up for a small request")

    llm = ScriptedLLM([_bash(1), tool_response("finish", {"message": "done"})])
    config = AgentConfig(condenser=CondenserConfig(max_events=None, context_window=window))
    h = make_harness(llm, config=config)
    h.send("One step.")
    h.start()
    await h.settle(AgentState.FINISHED)
    assert h.of("condensation") == []


async def test_a_request_refused_as_too_long_is_condensed_and_retried(
    make_harness: HarnessFactory,
) -> None:
    overflow = LLMBadRequestError("This model's maximum context length is 8192 tokens")
    llm = SummarisingLLM(
        [_bash(1), _bash(2), _bash(3), overflow, tool_response("finish", {"message": "done"})]
    )
    h = make_harness(llm, config=AgentConfig(condenser=CondenserConfig(max_events=None)))
    h.send("Go.")
    h.start()
    await h.settle(AgentState.FINISHED)
    assert len(h.of("condensation")) == 1 and h.errors() == []
    assert "SUMMARY-1" in json.dumps(llm.requests[-1].messages)
