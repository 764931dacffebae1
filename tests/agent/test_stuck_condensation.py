"""The fifth stuck pattern: 10 condensations in a row, counted since the last user message."""

from __future__ import annotations

from convo.agent import stuck
from convo.agent.condenser import condensation_action
from convo.domain.conversation import AgentState
from convo.domain.events import Event, EventSource, message_action
from convo.llm.scripted import ScriptedLLM, text_response
from tests.agent.conftest import HarnessFactory


def _history(condensations: int, *, user_after: bool = False) -> list[Event]:
    events = [message_action("Go.", EventSource.USER).stored(0)]
    for _ in range(condensations):
        forget = [events[-1]]
        events.append(condensation_action(forget, "nothing new", 1).stored(len(events)))
    if user_after:
        events.append(message_action("Again.", EventSource.USER).stored(len(events)))
    return events


def test_ten_condensations_in_a_row_are_a_loop() -> None:
    assert stuck.detect_stuck(_history(9)) is None
    assert stuck.detect_stuck(_history(10)) == stuck.CONDENSATION_LOOP
    assert stuck.detect_stuck(_history(10, user_after=True)) is None


async def test_the_loop_stops_the_agent_with_the_pattern(make_harness: HarnessFactory) -> None:
    llm = ScriptedLLM([text_response("never asked")])
    h = make_harness(llm, history=_history(10))
    h.start()
    await h.settle(AgentState.ERROR)
    assert llm.requests == []
    assert h.errors()[-1].content == f"Agent got stuck in a loop: {stuck.CONDENSATION_LOOP}."
