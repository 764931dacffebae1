"""Recall on every user message, as OpenHands' controller and memory do it: the first message's
recall asks for the workspace context, each later one's for knowledge; a knowledge microagent
a message triggers is in the environment's answer and reaches the model right after that
message; a message that triggers none is answered by a ``null`` observation."""

from __future__ import annotations

from convo.agent.controller import AgentConfig
from convo.agent.start_events import WorkspaceContext
from convo.domain.conversation import AgentState
from convo.domain.events import (
    Event,
    EventSource,
    MessageAction,
    NullObservation,
    RecallAction,
    RecallObservation,
    message_action,
)
from convo.llm.scripted import ScriptedLLM, text_response
from convo.runtime.fake import FakeSandbox
from tests.agent.conftest import HarnessFactory

AWAITING = AgentState.AWAITING_USER_INPUT


def _microagent(sandbox: FakeSandbox, name: str, triggers: list[str], body: str) -> None:
    folder = sandbox.root / ".openhands" / "microagents"
    folder.mkdir(parents=True, exist_ok=True)
    header = "\n".join(f"  - {t}" for t in triggers)
    (folder / f"{name}.md").write_text(f"---\nname: {name}\ntriggers:\n{header}\n---\n{body}\n")


def _extra_info(messages: list[dict[str, object]]) -> list[str]:
    return [str(m["content"]) for m in messages if "<EXTRA_INFO>" in str(m["content"])]


def _after(events: list[Event], message: Event) -> list[Event]:
    return [e for e in events if e.id > message.id and e.observation != "agent_state_changed"]


async def test_every_user_message_recalls_and_the_model_reads_the_knowledge(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    _microagent(sandbox, "deploy", ["deploy"], "Deploy with `make ship`.")
    _microagent(sandbox, "docker", ["container", "docker"], "Images build from ./Dockerfile.")
    llm = ScriptedLLM([text_response("Shipping."), text_response("Fine."), text_response("Ok.")])
    h = make_harness(llm)
    first = h.send("Please DEPLOY it")
    h.start()
    await h.settle(AWAITING)

    # the first message: the workspace context, with the knowledge it triggers
    action, answer = [e for e in _after(h.events, first) if e.source != EventSource.AGENT][:2]
    assert isinstance(action, RecallAction) and isinstance(answer, RecallObservation)
    assert (action.source, action.recall_type, action.query) == (
        "user",
        "workspace_context",
        "Please DEPLOY it",
    )
    assert action.message == "Retrieving content for: Please DEPLOY it"
    assert (answer.cause, answer.recall_type, answer.source) == (
        action.id,
        "workspace_context",
        "environment",
    )
    assert [(k.name, k.trigger) for k in answer.microagent_knowledge] == [("deploy", "deploy")]
    assert answer.microagent_knowledge[0].content.strip() == "Deploy with `make ship`."
    messages = llm.requests[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "user"]
    assert messages[1]["content"] == "Please DEPLOY it"
    assert "Deploy with `make ship`." in str(messages[2]["content"])
    assert '"deploy"' in str(messages[2]["content"])

    # a later message that triggers nothing: a knowledge recall answered by a null observation
    second = h.send("and then?")
    await h.until(lambda: len(llm.requests) == 2)
    await h.settle(AWAITING)
    action, answer, reply = _after(h.events, second)[:3]
    assert isinstance(action, RecallAction) and isinstance(answer, NullObservation)
    assert (action.source, action.recall_type, action.query) == ("user", "knowledge", "and then?")
    assert (answer.cause, answer.source, answer.content) == (action.id, "environment", "")
    assert isinstance(reply, MessageAction) and reply.content == "Fine."
    assert len(_extra_info(llm.requests[1].messages)) == 1  # only the first message's

    # a later message that triggers another microagent: its knowledge, for the model too
    third = h.send("what about the container image?")
    await h.until(lambda: len(llm.requests) == 3)
    await h.settle(AWAITING)
    action, answer = _after(h.events, third)[:2]
    assert isinstance(action, RecallAction) and action.recall_type == "knowledge"
    assert isinstance(answer, RecallObservation)
    assert (answer.cause, answer.recall_type) == (action.id, "knowledge")
    assert (answer.message, answer.content) == (
        "Added microagent knowledge",
        "Retrieved knowledge from microagents",
    )
    assert [(k.name, k.trigger) for k in answer.microagent_knowledge] == [("docker", "container")]
    messages = llm.requests[2].messages
    asked = next(i for i, m in enumerate(messages) if m["content"] == third.content)
    assert "Images build from ./Dockerfile." in str(messages[asked + 1]["content"])
    assert len(_extra_info(messages)) == 2
    # each message recalled once; nothing else of the recalls reaches the model
    assert sum(isinstance(e, RecallAction) for e in h.events) == 3
    assert [m["role"] for m in messages].count("user") == 5


async def test_a_restart_answers_a_recall_a_dead_loop_left_once(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    """The loop died after storing a later message's recall action: the next loop answers
    that action, stores no second one, and the model gets the knowledge."""
    _microagent(sandbox, "deploy", ["deploy"], "Deploy with `make ship`.")
    history: list[Event] = [
        message_action("hello", EventSource.USER),
        RecallAction(source=EventSource.USER, recall_type="workspace_context", query="hello"),
        RecallObservation(source=EventSource.ENVIRONMENT, recall_type="workspace_context"),
        message_action("Hi!", EventSource.AGENT),
        message_action("now deploy", EventSource.USER),
        RecallAction(source=EventSource.USER, recall_type="knowledge", query="now deploy"),
    ]
    stored = [e.stored(i, "2026-11-29T10:00:00") for i, e in enumerate(history)]
    stored[2] = stored[2].model_copy(update={"cause": 1})
    llm = ScriptedLLM([text_response("Deployed.")])
    h = make_harness(llm, history=stored)
    h.start()
    await h.settle(AWAITING)
    new = h.events[len(stored) :]
    answers = [e for e in new if isinstance(e, RecallObservation)]
    assert [(a.cause, a.recall_type) for a in answers] == [(5, "knowledge")]
    assert not any(isinstance(e, RecallAction) for e in new)
    assert "Deploy with `make ship`." in _extra_info(llm.requests[0].messages)[0]


async def test_the_workspace_context_names_the_users_secrets_never_their_values(
    make_harness: HarnessFactory,
) -> None:
    llm = ScriptedLLM([text_response("Noted.")])
    secrets = {"DEPLOY_KEY": "the staging deploy key", "NPM_TOKEN": ""}
    h = make_harness(llm, config=AgentConfig(workspace=WorkspaceContext(secrets=secrets)))
    h.send("hello")
    h.start()
    await h.settle(AWAITING)
    answer = next(e for e in h.events if isinstance(e, RecallObservation))
    assert answer.custom_secrets_descriptions == secrets
    assert answer.runtime_hosts == {}  # convo exposes no web hosts
    system = llm.requests[0].messages[0]["content"]
    assert "* $DEPLOY_KEY: the staging deploy key" in system and "* $NPM_TOKEN" in system
