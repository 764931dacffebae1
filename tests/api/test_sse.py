"""GET /api/conversations/{id}/events/stream: Server-Sent Events with Last-Event-ID resume,
keep-alives, and a bounded slow consumer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from convo.api.app import Overrides
from convo.domain.events import EventSource, message_action
from convo.llm.scripted import ScriptedLLM
from convo.services.conversations import NewConversation
from convo.services.streams import StreamOptions
from tests.api.conftest import RunningServer, ServeFactory, wait_for
from tests.stream.helpers import FakeSandboxFactory, read_sse


def _overrides(**options: Any) -> Overrides:
    return Overrides(
        sandbox_factory=FakeSandboxFactory(),
        llm_factory=lambda _c: ScriptedLLM(),
        stream_options=StreamOptions(**options),
    )


async def _conversation_with(server: RunningServer, count: int, size: int = 10) -> str:
    """A conversation whose loop never ran, holding ``count`` events."""
    cid: str = await server.manager.create(None, NewConversation())
    await _append(server, cid, count, size)
    return cid


async def _append(server: RunningServer, cid: str, count: int, size: int = 10) -> None:
    log = server.manager.event_log
    for i in range(count):
        await log.append(cid, message_action(f"m{i} " + "x" * size, EventSource.USER))


def _event_ids(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["id"]) for m in messages if m.get("event") == "event"]


async def _last_id(server: RunningServer, cid: str) -> int:
    last: int = await server.manager.storage.events.last_id(cid)
    return last


async def test_last_event_id_resume_then_live(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides(keepalive_seconds=0.2)) as server:
        cid = await _conversation_with(server, 5)
        last = await _last_id(server, cid)
        url = f"/api/conversations/{cid}/events/stream"
        async with server.client.stream("GET", url, headers={"Last-Event-ID": "2"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            replayed = await read_sse(lines, lambda ms: last in _event_ids(ms))
            assert _event_ids(replayed) == list(range(3, last + 1))
            first = next(m for m in replayed if m.get("event") == "event")
            assert json.loads(first["data"])["id"] == 3
            assert server.manager.num_connections(cid) == 1

            await _append(server, cid, 2)
            await server.client.patch(f"/api/conversations/{cid}", json={"title": "Renamed"})
            live = await read_sse(
                lines, lambda ms: any(m.get("event") == "status_update" for m in ms)
            )
            assert _event_ids(live) == [last + 1, last + 2]
            status = next(m for m in live if m.get("event") == "status_update")
            assert "id" not in status  # no SSE id: it must not move the resume point
            assert json.loads(status["data"])["conversation_title"] == "Renamed"
            idle = await read_sse(lines, lambda ms: any("comment" in m for m in ms))
            assert {"comment": "keep-alive"} in idle
        await wait_for(lambda: server.manager.num_connections(cid) == 0)

        # ?after= does the same as the header
        async with server.client.stream("GET", url, params={"after": last}) as response:
            again = await read_sse(response.aiter_lines(), lambda ms: last + 2 in _event_ids(ms))
            assert _event_ids(again) == [last + 1, last + 2]


async def test_stream_errors(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        missing = await server.client.get(
            "/api/conversations/0123456789abcdef0123456789abcdef/events/stream"
        )
        assert missing.status_code == 404
        cid = await _conversation_with(server, 1)
        bad = await server.client.get(
            f"/api/conversations/{cid}/events/stream", headers={"Last-Event-ID": "abc"}
        )
        assert bad.status_code == 400
        assert "Last-Event-ID" in bad.json()["detail"]
        negative = await server.client.get(
            f"/api/conversations/{cid}/events/stream", params={"after": -5}
        )
        assert negative.status_code == 422


async def test_the_stream_needs_the_session_key(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides(), session_api_key="k") as server:
        response = await server.client.get("/api/conversations/abc/events/stream")
        assert response.status_code == 401


async def test_a_slow_consumer_is_cut_off_and_resumes_without_a_gap(
    server_factory: ServeFactory,
) -> None:
    bound = 20
    async with server_factory(_overrides(max_queue=bound, keepalive_seconds=30)) as server:
        cid = await _conversation_with(server, 1)
        url = f"{server.base_url}/api/conversations/{cid}/events/stream"
        bus = server.app.state.bus
        seen: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=30) as slow, slow.stream("GET", url) as response:
            lines = response.aiter_lines()
            seen += await read_sse(lines, lambda ms: 0 in _event_ids(ms))
            assert bus.subscriber_count(cid) == 1
            # the client stops reading; 64 KiB events pile up far past socket buffers
            max_queued = 0

            async def produce() -> None:
                nonlocal max_queued
                for _ in range(300):
                    await _append(server, cid, 1, size=64 * 1024)
                    for subscription in list(bus._subscribers.get(cid, ())):
                        max_queued = max(max_queued, subscription._queue.qsize())

            await asyncio.wait_for(produce(), 30)  # the publisher is never held up
            assert bus.subscriber_count(cid) == 0  # the slow subscriber was dropped...
            assert max_queued <= bound + 1  # ...after holding at most the bound (+ the end mark)
            seen += await read_sse(lines, lambda ms: any(m.get("event") == "resume" for m in ms))
        resume = json.loads(seen[-1]["data"])
        delivered = _event_ids(seen)
        assert delivered == list(range(len(delivered)))
        assert resume["last_event_id"] == delivered[-1] < await _last_id(server, cid)

        last = await _last_id(server, cid)
        headers = {"Last-Event-ID": str(resume["last_event_id"])}
        async with server.client.stream("GET", url, headers=headers) as response:
            rest = await read_sse(response.aiter_lines(), lambda ms: last in _event_ids(ms))
        assert delivered + _event_ids(rest) == list(range(last + 1))
