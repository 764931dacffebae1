"""``GET /api/conversations/{id}/events`` with OpenHands' ``filter``: an EventFilter sent as
the request's JSON body (FastAPI reads OpenHands' dataclass parameter there, even on a GET),
over real HTTP. The page, ``limit`` and ``has_more`` count only the events the filter keeps,
forwards and backwards, across the batches the server reads from storage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from convo.runtime.base import CommandResult
from convo.services import conversation_records
from tests.api.conftest import RunningServer, ServeFactory, wait_for
from tests.stream.helpers import FakeSandboxFactory

NEEDLE_OUTPUT = CommandResult("found the Nädel here\n", 0, "/workspace", False)


def _overrides() -> Overrides:
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": "grep -r nadel ."}),
            tool_response("execute_bash", {"command": "ls"}),
            text_response("The NEEDLE is in notes.txt."),
            text_response("Nothing else."),
        ]
    )
    sandboxes = FakeSandboxFactory({"grep -r nadel .": NEEDLE_OUTPUT})
    return Overrides(sandbox_factory=sandboxes, llm_factory=lambda _config: llm)


async def _page(
    server: RunningServer, cid: str, body: dict[str, Any] | None, **params: Any
) -> dict[str, Any]:
    response = await server.client.request(
        "GET", f"/api/conversations/{cid}/events", params=params, json=body
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _all(server: RunningServer, cid: str) -> list[dict[str, Any]]:
    page = await _page(server, cid, None, limit=100)
    assert page["has_more"] is False
    events: list[dict[str, Any]] = page["events"]
    return events


async def _two_turns(server: RunningServer) -> str:
    created = await server.client.post("/api/conversations", json={"initial_user_msg": "find it"})
    cid: str = created.json()["conversation_id"]

    async def answered(count: int) -> bool:
        events = await _all(server, cid)
        return sum(e.get("action") == "message" and e["source"] == "agent" for e in events) >= count

    await wait_for(lambda: answered(1))
    sent = await server.client.post(
        f"/api/conversations/{cid}/events",
        json={"action": "message", "args": {"content": "anything else?"}},
    )
    assert sent.status_code == 200
    await wait_for(lambda: answered(2))
    return cid


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server reads a filtered search 3 events at a time, so pages cross batches."""
    monkeypatch.setattr(conversation_records, "SEARCH_BATCH", 3)


async def test_filter_by_type_pages_and_says_has_more(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _two_turns(server)
        events = await _all(server, cid)
        messages = [e for e in events if e.get("action") == "message"]
        assert [(m["source"], m["args"]["content"]) for m in messages] == [
            ("user", "find it"),
            ("agent", "The NEEDLE is in notes.txt."),
            ("user", "anything else?"),
            ("agent", "Nothing else."),
        ]
        only = {"include_types": ["MessageAction"]}

        whole = await _page(server, cid, only)
        assert whole == {"events": messages, "has_more": False}
        first = await _page(server, cid, only, limit=3)
        assert first["events"] == messages[:3] and first["has_more"] is True
        rest = await _page(server, cid, only, start_id=first["events"][-1]["id"] + 1, limit=3)
        assert rest == {"events": messages[3:], "has_more": False}
        window = await _page(
            server, cid, only, start_id=messages[1]["id"], end_id=messages[2]["id"]
        )
        assert window == {"events": messages[1:3], "has_more": False}
        assert (await _page(server, cid, only, limit=0)) == {"events": [], "has_more": True}

        latest = await _page(server, cid, only, reverse=True, limit=3)
        assert latest["events"] == messages[::-1][:3] and latest["has_more"] is True
        older = await _page(
            server, cid, only, reverse=True, end_id=latest["events"][-1]["id"] - 1, limit=3
        )
        assert older == {"events": messages[:1], "has_more": False}

        # whole families, as OpenHands' class hierarchy has them
        observations = await _page(server, cid, {"include_types": ["Observation"]}, limit=100)
        assert observations["events"] == [e for e in events if "observation" in e]
        actions = await _page(server, cid, {"exclude_types": ["Observation"]}, limit=100)
        assert actions["events"] == [e for e in events if "action" in e]


async def test_filter_by_source_query_and_dates(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _two_turns(server)
        events = await _all(server, cid)

        commands = await _page(server, cid, {"source": "agent", "include_types": ["CmdRunAction"]})
        assert [e["args"]["command"] for e in commands["events"]] == ["grep -r nadel .", "ls"]
        by_user = await _page(server, cid, {"source": "user"}, limit=100)
        assert by_user["events"] == [e for e in events if e["source"] == "user"]

        # case-insensitive, anywhere in the event's JSON: command, output, agent message
        needle = await _page(server, cid, {"query": "needle"}, limit=100)
        assert [e["id"] for e in needle["events"]] == [
            e["id"] for e in events if "needle" in json.dumps(e).lower()
        ]
        assert any(e.get("action") == "message" for e in needle["events"])
        umlaut = await _page(server, cid, {"query": "NÄDEL"}, limit=100)
        assert [e.get("observation") for e in umlaut["events"]] == ["run"]
        assert umlaut["events"][0]["content"].startswith("found the Nädel here")
        nothing = await _page(server, cid, {"query": "no such text"})
        assert nothing == {"events": [], "has_more": False}

        start, end = events[2]["timestamp"], events[5]["timestamp"]
        dated = await _page(server, cid, {"start_date": start, "end_date": end}, limit=100)
        assert dated["events"] == [e for e in events if start <= e["timestamp"] <= end]
        assert dated["events"][0]["id"] <= 2 and dated["events"][-1]["id"] >= 5


async def test_filter_hidden_commands(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _two_turns(server)
        for command, hidden in (("echo shown", False), ("echo kept-from-view", True)):
            sent = await server.client.post(
                f"/api/conversations/{cid}/events",
                json={"action": "run", "args": {"command": command, "hidden": hidden}},
            )
            assert sent.status_code == 200

        async def both_ran() -> bool:
            runs = await _page(server, cid, {"include_types": ["CmdOutputObservation"]}, limit=100)
            return len(runs["events"]) == 4

        await wait_for(both_ran)
        runs = {"include_types": ["CmdRunAction"], "source": "user"}
        every = (await _page(server, cid, runs))["events"]
        assert [e["args"]["command"] for e in every] == ["echo shown", "echo kept-from-view"]
        shown = (await _page(server, cid, {**runs, "exclude_hidden": True}))["events"]
        assert [e["args"]["command"] for e in shown] == ["echo shown"]


async def test_bad_filters_are_refused(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _two_turns(server)
        url = f"/api/conversations/{cid}/events"
        unknown = await server.client.request("GET", url, json={"include_types": ["NoSuchAction"]})
        assert unknown.status_code == 422
        assert "NoSuchAction" in unknown.text
        not_json = await server.client.request(
            "GET", url, content=b"{", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422
        # an empty filter keeps everything; no body at all is no filter
        assert (await _page(server, cid, {})) == (await _page(server, cid, None))
        # still a conversation that must exist
        missing = await server.client.request(
            "GET", "/api/conversations/nope/events", json={"source": "agent"}
        )
        assert missing.status_code == 404
