"""Socket.IO at /socket.io/ with a real python-socketio client against a real server."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import socketio

from convo.api.app import Overrides
from convo.domain.events import (
    AgentStateChangedObservation,
    Event,
    NullAction,
    NullObservation,
    RecallAction,
)
from convo.llm.scripted import ScriptedLLM, text_response
from convo.services.conversations import NewConversation
from tests.api.conftest import RunningServer, ServeFactory, wait_for
from tests.stream.helpers import FakeSandboxFactory, SlowLLM, SocketClient, ids_of, thinking_task


def _overrides(llm: ScriptedLLM) -> Overrides:
    return Overrides(sandbox_factory=FakeSandboxFactory(), llm_factory=lambda _c: llm)


async def _stored_ids(server: RunningServer, cid: str) -> list[int]:
    events = await server.manager.storage.events.list(cid)
    return [e.id for e in events]


def _replayed(events: list[Event], after: int) -> list[int]:
    """The ids a socket replay sends, as OpenHands' server: no null events or recall actions,
    and of the state changes only the last."""
    states = [e.id for e in events if isinstance(e, AgentStateChangedObservation)]
    last_state = states[-1] if states else -1
    return [
        e.id
        for e in events
        if e.id > after
        and not isinstance(e, NullAction | NullObservation | RecallAction)
        and not (isinstance(e, AgentStateChangedObservation) and e.id < last_state)
    ]


async def _state_ids(server: RunningServer, cid: str) -> list[int]:
    events = await server.manager.storage.events.list(cid)
    return [e.id for e in events if isinstance(e, AgentStateChangedObservation)]


async def _finished(server: RunningServer, cid: str) -> bool:
    events = await server.manager.storage.events.list(cid)
    return any(
        isinstance(e, AgentStateChangedObservation) and e.agent_state == "finished" for e in events
    )


async def _create(server: RunningServer, message: str | None = "go") -> str:
    body = {"initial_user_msg": message} if message else {}
    response = await server.client.post("/api/conversations", json=body)
    assert response.status_code == 200, response.text
    cid: str = response.json()["conversation_id"]
    return cid


async def test_replay_from_an_id_then_live_events(server_factory: ServeFactory) -> None:
    llm = ScriptedLLM(thinking_task(3))
    async with server_factory(_overrides(llm)) as server:
        cid = await _create(server)
        await wait_for(lambda: _finished(server, cid))
        stored_events = await server.manager.storage.events.list(cid)
        stored = [e.id for e in stored_events]
        client = SocketClient(server.base_url)
        await client.connect(cid, latest_event_id=2)
        await wait_for(lambda: ids_of(client.events)[-1:] == stored[-1:])
        assert ids_of(client.events) == _replayed(stored_events, 2)
        assert server.manager.num_connections(cid) == 1
        info = (await server.client.get(f"/api/conversations/{cid}")).json()
        assert info["num_connections"] == 1

        llm.add(text_response("Anything else?"))
        reply = await server.client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "message", "args": {"content": "one more thing"}},
        )
        assert reply.status_code == 200
        await wait_for(lambda: any(e.get("message") == "Anything else?" for e in client.events))
        now_stored = await _stored_ids(server, cid)
        await wait_for(lambda: ids_of(client.events)[-1:] == now_stored[-1:])
        # live after replay: no gap, no repeat; as OpenHands, no null events (the message's
        # recall that triggered nothing)
        nulls = {
            e.id
            for e in await server.manager.storage.events.list(cid)
            if isinstance(e, NullAction | NullObservation)
        }
        live = [i for i in now_stored if i > stored[-1] and i not in nulls]
        assert ids_of(client.events) == _replayed(stored_events, 2) + live
        await client.disconnect()
        await wait_for(lambda: server.manager.num_connections(cid) == 0)


async def test_connecting_starts_the_loop_and_a_socket_message_reaches_the_agent(
    server_factory: ServeFactory,
) -> None:
    llm = ScriptedLLM([text_response("Hello from the agent")])
    async with server_factory(_overrides(llm)) as server:
        cid = await server.manager.create(None, NewConversation())  # stored, never started
        assert server.manager.status(cid) == "STOPPED"
        client = SocketClient(server.base_url)
        await client.connect(cid, providers_set="github,gitlab")
        await wait_for(lambda: server.manager.status(cid) == "RUNNING")
        await client.sio.emit(
            "oh_user_action", {"action": "message", "args": {"content": "hi over the socket"}}
        )
        await wait_for(
            lambda: any(e.get("message") == "Hello from the agent" for e in client.events)
        )
        assert "hi over the socket" in str(llm.requests[0].messages)
        user_messages = [
            e for e in client.events if e.get("source") == "user" and e.get("action") == "message"
        ]
        assert [m["args"]["content"] for m in user_messages] == ["hi over the socket"]

        # the legacy event name works too, and change_agent_state is accepted
        await client.sio.emit(
            "oh_action", {"action": "change_agent_state", "args": {"agent_state": "paused"}}
        )
        await wait_for(lambda: any(e.get("action") == "change_agent_state" for e in client.events))
        await client.disconnect()


async def test_an_unsupported_action_gets_an_error_and_nothing_is_stored(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(_overrides(ScriptedLLM())) as server:
        cid = await _create(server, message=None)
        client = SocketClient(server.base_url)
        await client.connect(cid)
        await wait_for(lambda: server.manager.status(cid) == "RUNNING")
        await wait_for(lambda: any(e.get("extras", {}).get("agent_state") == "awaiting_user_input"
                                   for e in client.events))  # fmt: skip
        before = await _stored_ids(server, cid)
        await client.sio.emit("oh_user_action", {"action": "finish", "args": {}})
        await client.sio.emit("oh_user_action", "not an object")
        await wait_for(lambda: len([e for e in client.events if e.get("error")]) == 2)
        errors = sorted((e for e in client.events if e.get("error")), key=lambda e: e["message"])
        assert [set(e) for e in errors] == [{"error", "message"}] * 2
        assert errors[0]["message"] == "An action must be a JSON object"
        assert "Unsupported action 'finish'" in errors[1]["message"]
        await asyncio.sleep(0.1)
        assert await _stored_ids(server, cid) == before
        await client.disconnect()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, "session_api_key is required"),
        ({"session_api_key": "wrong"}, "Invalid session_api_key"),
    ],
)
async def test_a_bad_key_is_refused_cleanly(
    server_factory: ServeFactory, query: dict[str, str], expected: str
) -> None:
    async with server_factory(
        _overrides(ScriptedLLM()), headers={"X-Session-API-Key": "right"}, session_api_key="right"
    ) as server:
        cid = await _create(server, message=None)
        client = SocketClient(server.base_url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(cid, **query)
        assert client.connect_errors and expected in client.connect_errors[0]["message"]
        assert server.manager.num_connections(cid) == 0
        good = SocketClient(server.base_url)
        await good.connect(cid, session_api_key="right")
        assert good.sio.connected
        await good.disconnect()


async def test_an_unknown_conversation_is_refused_and_not_created(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(_overrides(ScriptedLLM())) as server:
        for bad_id, expected in (
            ("0123456789abcdef0123456789abcdef", "not found"),
            ("../etc", "not found"),
            ("", "conversation_id is required"),
        ):
            client = SocketClient(server.base_url)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.connect(bad_id)
            assert client.connect_errors, bad_id
            assert expected in client.connect_errors[0]["message"], bad_id
        assert await server.manager.storage.conversations.count(None) == 0
        page = (await server.client.get("/api/conversations")).json()
        assert page["results"] == []
        # a latest_event_id that is not a number means "from the start" (see
        # tests/api/test_web_client_wire.py), it is not refused


async def test_a_reconnect_storm_while_the_agent_works_loses_and_repeats_nothing(
    server_factory: ServeFactory,
) -> None:
    llm = SlowLLM(thinking_task(150), delay=0.02)
    async with server_factory(_overrides(llm), max_iterations=500) as server:
        cid = await _create(server)
        await wait_for(lambda: len(llm.requests) > 0)
        before = len(await _stored_ids(server, cid))
        rng = random.Random(7)
        clients = [SocketClient(server.base_url) for _ in range(4)]
        seen: list[list[dict[str, Any]]] = [[] for _ in clients]

        async def storm(index: int, cycles: int) -> None:
            for _ in range(cycles):
                client = SocketClient(server.base_url)
                client.events = seen[index]  # one logical client across its reconnects
                await client.connect(cid, latest_event_id=client.last_event_id)
                await asyncio.sleep(rng.uniform(0, 0.03))
                await client.disconnect()
            clients[index].events = seen[index]

        await asyncio.gather(*(storm(i, 25) for i in range(4)))  # 100 cycles in all
        assert len(await _stored_ids(server, cid)) > before + 20, "the agent worked meanwhile"
        await wait_for(lambda: _finished(server, cid), timeout=40)
        stored = await _stored_ids(server, cid)
        for client in clients:  # a last connection catches up from where each client was
            await client.connect(cid, latest_event_id=client.last_event_id)
        await wait_for(lambda: all(c.last_event_id == stored[-1] for c in clients), timeout=20)
        states = await _state_ids(server, cid)
        recalls = [
            e.id for e in await server.manager.storage.events.list(cid) if e.action == "recall"
        ]
        for client in clients:  # every event once, in order; a replay skips older states
            received = ids_of(client.events)
            assert received == sorted(set(received)) and set(received) <= set(stored)
            assert set(stored) - set(received) <= set(states[:-1] + recalls)
            await client.disconnect()
        await wait_for(lambda: server.manager.num_connections(cid) == 0)


async def test_live_environment_events_are_the_agents_and_a_replay_sends_the_last_state(
    server_factory: ServeFactory,
) -> None:
    """As OpenHands' server: live, the environment's state changes and command results come
    with ``source: "agent"``; a replay leaves out all but the last state change (and null
    events and recall actions), in id order so a reconnect repeats nothing."""
    llm = ScriptedLLM(thinking_task(2))
    async with server_factory(_overrides(llm)) as server:
        cid = await server.manager.create(None, NewConversation())
        live = SocketClient(server.base_url)
        await live.connect(cid)
        await live.sio.emit("oh_user_action", {"action": "message", "args": {"content": "go"}})
        await wait_for(lambda: _finished(server, cid))
        stored = await server.manager.storage.events.list(cid)
        await wait_for(lambda: live.last_event_id == stored[-1].id)
        states = [e for e in live.events if e.get("observation") == "agent_state_changed"]
        assert len(states) >= 3 and {e["source"] for e in states} == {"agent"}
        assert all(
            e.source == "environment" for e in stored if e.observation == "agent_state_changed"
        )
        await live.disconnect()

        replay = SocketClient(server.base_url)
        await replay.connect(cid, latest_event_id=-1)
        await wait_for(lambda: replay.last_event_id == stored[-1].id)
        replayed_states = [
            e for e in replay.events if e.get("observation") == "agent_state_changed"
        ]
        assert [e["extras"]["agent_state"] for e in replayed_states] == ["finished"]
        assert replayed_states[0]["source"] == "environment"  # a replay keeps the stored source
        sent = ids_of(replay.events)
        assert sent == sorted(set(sent))
        assert sent == _replayed(stored, -1)
        await replay.disconnect()
        # HTTP keeps every event, as stored
        page = (await server.client.get(f"/api/conversations/{cid}/events?limit=100")).json()
        assert [e["id"] for e in page["events"]] == [e.id for e in stored]
