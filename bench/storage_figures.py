"""Event appends through ``EventLog`` (mask → durable store → publish), in this process.

One writer appending to one conversation (each append waits for the previous one, as an
agent's do) gives the latency; 32 writers on 32 conversations at once give the throughput.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench.server_figures import percentile
from convo.cluster.local import LocalEventBus
from convo.domain.conversation import ConversationMetadata
from convo.domain.events import EventSource, message_action
from convo.services.event_log import EventLog
from convo.storage import open_storage


async def append_figures(url: str, events: int) -> dict[str, Any]:
    storage = open_storage(url)
    bus = LocalEventBus()
    log = EventLog(storage.events, bus)
    try:
        await storage.migrate()
        for i in range(33):
            await storage.conversations.create(ConversationMetadata(conversation_id=f"app{i}"))
        latencies = []
        began = time.perf_counter()
        for i in range(events):
            start = time.perf_counter()
            await log.append("app0", message_action(f"event {i}", EventSource.AGENT))
            latencies.append(time.perf_counter() - start)
        sequential_rate = events / (time.perf_counter() - began)

        async def writer(conversation_id: str, count: int) -> None:
            for i in range(count):
                await log.append(conversation_id, message_action(f"e{i}", EventSource.AGENT))

        per_writer = max(1, events // 32)
        began = time.perf_counter()
        await asyncio.gather(*(writer(f"app{i + 1}", per_writer) for i in range(32)))
        concurrent_rate = 32 * per_writer / (time.perf_counter() - began)
    finally:
        await bus.aclose()
        await storage.aclose()
    return {
        "append_ms": (statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000),
        "append_rate_1": sequential_rate,
        "append_rate_32": concurrent_rate,
    }


def sqlite_url(workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{workdir / 'append.db'}"
