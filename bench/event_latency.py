"""Event delivery latency: from ``EventLog.append`` (mask → store in SQLite → publish) until a
subscriber's ``EventFeed`` hands the event out, with 1 and with 100 subscribers.

    .venv/bin/python -m bench.event_latency [--events 500]

Each event is appended after the previous one was stored (as an agent emits them); every
subscriber reads concurrently. Latency is measured per event and per subscriber.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from convo.cluster.local import LocalEventBus
from convo.domain.conversation import ConversationMetadata
from convo.domain.events import EventSource, message_action
from convo.services.event_log import EventLog
from convo.services.streams import EventFeed, FeedEnd
from convo.storage import open_storage

CONVERSATION_ID = "bench"


async def _subscriber(feed: EventFeed, sent: dict[int, float], out: list[float], n: int) -> None:
    seen = 0
    while seen < n:
        payload = await feed.next()
        if isinstance(payload, FeedEnd):
            raise RuntimeError("the feed ended early (fell behind?)")
        if payload is None:
            continue
        received = time.perf_counter()
        index = int(payload["args"]["content"].split("-")[1])
        out.append(received - sent[index])
        seen += 1


async def measure(subscribers: int, events: int, workdir: Path) -> list[float]:
    storage = open_storage(f"sqlite+aiosqlite:///{workdir / f'bench-{subscribers}.db'}")
    await storage.migrate()
    bus = LocalEventBus()
    log = EventLog(storage.events, bus)
    await storage.conversations.create(ConversationMetadata(conversation_id=CONVERSATION_ID))
    sent: dict[int, float] = {}
    latencies: list[float] = []
    feeds = [
        EventFeed(storage.events, bus, CONVERSATION_ID, max_queue=events + 10)
        for _ in range(subscribers)
    ]
    for feed in feeds:
        feed.open()
    readers = [
        asyncio.create_task(_subscriber(feed, sent, latencies, events), name=f"bench-sub-{i}")
        for i, feed in enumerate(feeds)
    ]
    try:
        for i in range(events):
            sent[i] = time.perf_counter()
            await log.append(CONVERSATION_ID, message_action(f"event-{i}", EventSource.AGENT))
        await asyncio.wait_for(asyncio.gather(*readers), 120)
    finally:
        for task in readers:
            task.cancel()
        for feed in feeds:
            feed.close()
        await bus.aclose()
        await storage.aclose()
    return latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(events: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="convo-bench-") as tmp:
        for subscribers in (1, 100):
            latencies = await measure(subscribers, events, Path(tmp))
            rows.append(
                (
                    subscribers,
                    events,
                    statistics.median(latencies) * 1000,
                    _percentile(latencies, 0.99) * 1000,
                )
            )
    print("append -> subscriber latency (EventLog + LocalEventBus + EventFeed, SQLite)")
    print(f"{'subscribers':>11} {'events':>7} {'median ms':>10} {'p99 ms':>8}")
    for subscribers, count, median, p99 in rows:
        print(f"{subscribers:>11} {count:>7} {median:>10.3f} {p99:>8.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    asyncio.run(main(parser.parse_args().events))
