"""Two servers in cluster mode on one store and one Redis: a client of one server follows
the events the other server appends, live and in order, status updates included."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from convo.api.app import Overrides
from convo.domain.events import EventSource, message_action
from convo.llm.scripted import ScriptedLLM
from convo.services.conversations import NewConversation
from convo.storage.memory import MemoryStorage
from tests.api.conftest import RunningServer, ServeFactory
from tests.cluster_redis.conftest import RedisServer
from tests.stream.helpers import FakeSandboxFactory, read_sse

UNUSED_POSTGRES = "postgresql+asyncpg://convo@127.0.0.1:9/unused"  # storage is in memory


async def test_a_client_of_one_server_follows_events_appended_on_another(
    redis_server: RedisServer, server_factory: ServeFactory, tmp_path: Path
) -> None:
    storage = MemoryStorage()  # the database both servers share

    def server(name: str) -> AbstractAsyncContextManager[RunningServer]:
        return server_factory(
            Overrides(
                storage=storage,
                sandbox_factory=FakeSandboxFactory(),
                llm_factory=lambda _c: ScriptedLLM(),
            ),
            data_dir=tmp_path / name,
            database_url=UNUSED_POSTGRES,
            redis_url=redis_server.url,
        )

    async with server("a") as a, server("b") as b:
        assert a.app.state.node_id != b.app.state.node_id
        cid = await a.manager.create(None, NewConversation())
        url = f"/api/conversations/{cid}/events/stream"
        async with b.client.stream("GET", url) as response:
            lines = response.aiter_lines()
            await read_sse(lines, lambda ms: any("comment" in m for m in ms))  # following
            for i in range(30):
                await a.manager.event_log.append(cid, message_action(f"m{i}", EventSource.USER))
            await a.client.patch(f"/api/conversations/{cid}", json={"title": "Renamed"})
            seen = await read_sse(
                lines, lambda ms: any(m.get("event") == "status_update" for m in ms)
            )
        events = [json.loads(m["data"]) for m in seen if m.get("event") == "event"]
        assert [e["message"] for e in events] == [f"m{i}" for i in range(30)]
        assert [int(m["id"]) for m in seen if m.get("event") == "event"] == list(range(30))
        status = next(m for m in seen if m.get("event") == "status_update")
        assert json.loads(status["data"])["conversation_title"] == "Renamed"
