"""The user actions OpenHands' server accepts beyond the terminal's ``run``: ``write`` (a
file written by a script or client) and ``browse`` (no browser here: answered with an
error observation, as OpenHands answers where no browser is available). Real HTTP and
Socket.IO, a real workspace (the process runtime)."""

from __future__ import annotations

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM
from convo.services.user_events import NO_BROWSER
from tests.api.conftest import RunningServer, ServeFactory, wait_for
from tests.stream.helpers import SocketClient


async def _connect(server: RunningServer, cid: str) -> SocketClient:
    client = SocketClient(server.base_url)
    await client.connect(cid, latest_event_id=-1)
    return client


async def _create(server: RunningServer) -> str:
    created = await server.client.post("/api/conversations", json={})
    cid: str = created.json()["conversation_id"]
    return cid


async def test_write_over_http_and_the_socket(server_factory: ServeFactory) -> None:
    llm = ScriptedLLM()
    async with server_factory(Overrides(llm_factory=lambda _c: llm)) as server:
        cid = await _create(server)
        client = await _connect(server, cid)
        try:
            await wait_for(lambda: client.agent_state == "awaiting_user_input")
            events = f"/api/conversations/{cid}/events"
            whole = {"action": "write", "args": {"path": "docs/plan.md", "content": "a\nb\nc\n"}}
            sent = await server.client.post(events, json=whole)
            assert sent.status_code == 200, sent.text
            write_id = sent.json()["id"]
            await wait_for(lambda: client.answer_to(write_id) is not None)
            answer = client.answer_to(write_id)
            assert answer is not None and answer["observation"] == "write"
            assert answer["extras"] == {"path": "docs/plan.md"}
            workspace = server.manager.workspace_path(cid)
            assert (workspace / "docs/plan.md").read_text() == "a\nb\nc\n"

            # lines 1..2 (0-based, end excluded) replaced, over the socket
            part = {"path": "docs/plan.md", "content": "B\nB2\n", "start": 1, "end": 2}
            await client.sio.emit("oh_user_action", {"action": "write", "args": part})
            await wait_for(
                lambda: len([e for e in client.events if e.get("observation") == "write"]) == 2
            )
            assert (workspace / "docs/plan.md").read_text() == "a\nB\nB2\nc\n"
            stored = [e for e in client.events if e.get("action") == "write"]
            assert all(e["source"] == "user" for e in stored)
            assert stored[1]["args"]["start"] == 1 and stored[1]["args"]["end"] == 2

            outside = {"action": "write", "args": {"path": "/etc/convo-x", "content": "no"}}
            out_id = (await server.client.post(events, json=outside)).json()["id"]
            await wait_for(lambda: client.answer_to(out_id) is not None)
            refused = client.answer_to(out_id)
            assert refused is not None and refused["observation"] == "error"
            assert "outside the workspace" in refused["content"]
            for bad in (
                {"action": "write", "args": {"path": "x", "content": 5}},
                {"action": "write", "args": {"path": "x", "content": "", "start": 3, "end": 1}},
            ):
                assert (await server.client.post(events, json=bad)).status_code == 400, bad
        finally:
            await client.disconnect()
        assert llm.requests == []  # the agent was not asked to act on the user's writes


async def test_write_waits_for_confirmation_as_the_agents_edits(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(Overrides(llm_factory=lambda _c: ScriptedLLM())) as server:
        await server.client.post("/api/settings", json={"confirmation_mode": True})
        cid = await _create(server)
        client = await _connect(server, cid)
        try:
            await wait_for(lambda: client.agent_state == "awaiting_user_input")
            write = {"action": "write", "args": {"path": "held.txt", "content": "later\n"}}
            sent = await server.client.post(f"/api/conversations/{cid}/events", json=write)
            write_id = sent.json()["id"]
            await wait_for(lambda: client.agent_state == "awaiting_user_confirmation")
            workspace = server.manager.workspace_path(cid)
            assert not (workspace / "held.txt").exists()
            stored = next(e for e in client.events if e.get("id") == write_id)
            assert stored["args"]["confirmation_state"] == "awaiting_confirmation"
            decision = {"action": "change_agent_state", "args": {"agent_state": "user_confirmed"}}
            await client.sio.emit("oh_user_action", decision)
            await wait_for(lambda: (workspace / "held.txt").exists())
            assert (workspace / "held.txt").read_text() == "later\n"
            await wait_for(lambda: client.agent_state == "awaiting_user_input")
        finally:
            await client.disconnect()


async def test_browse_is_answered_there_is_no_browser(server_factory: ServeFactory) -> None:
    llm = ScriptedLLM()
    async with server_factory(Overrides(llm_factory=lambda _c: llm)) as server:
        cid = await _create(server)
        client = await _connect(server, cid)
        try:
            await wait_for(lambda: client.agent_state == "awaiting_user_input")
            browse = {"action": "browse", "args": {"url": "https://example.org/"}}
            await client.sio.emit("oh_user_action", browse)
            await wait_for(lambda: any(e.get("action") == "browse" for e in client.events))
            action = next(e for e in client.events if e.get("action") == "browse")
            assert action["source"] == "user" and action["args"]["url"] == "https://example.org/"
            await wait_for(lambda: client.answer_to(action["id"]) is not None)
            answer = client.answer_to(action["id"])
            assert answer is not None and answer["observation"] == "error"
            assert answer["content"] == NO_BROWSER
            assert not any(e.get("error") for e in client.events)  # no refusal toast
            assert client.agent_state == "awaiting_user_input"  # the agent goes on waiting
        finally:
            await client.disconnect()

        # also for a stopped conversation (nothing runs: nothing to start)
        await server.client.post(f"/api/conversations/{cid}/stop")
        events = f"/api/conversations/{cid}/events"
        steps = {"action": "browse_interactive", "args": {"browser_actions": "goto('x')"}}
        sent = await server.client.post(events, json=steps)
        assert sent.status_code == 200, sent.text
        page = (await server.client.get(events, params={"start_id": sent.json()["id"]})).json()
        assert [e.get("action") or e.get("observation") for e in page["events"]] == [
            "browse_interactive",
            "error",
        ]
        assert (await server.client.get(f"/api/conversations/{cid}")).json()["status"] == "STOPPED"
        assert (
            await server.client.post(events, json={"action": "browse", "args": {}})
        ).status_code == 400
    assert llm.requests == []
