"""The live-event transport alone: ``python -m bench.redis_bus [--events N]``.

Two ``RedisNode``s in one process on a ``redis-server`` of the bench's own (never the
machine's): node A publishes, a subscriber on node B receives. Prints the latency of one
event (publish on A until B's subscriber has it; one at a time, median / p99) and the rate of
a burst (events per second until B has the last one), next to the in-process bus a single
server uses. Figures include Python's JSON work on both sides; on a loaded machine they are
inflated.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.redis_server import RedisServer
from convo.cluster.base import EventBus
from convo.cluster.local import LocalEventBus
from convo.cluster.redis_node import RedisNode

CONVERSATION = "bench-redis-bus"


def _payload(event_id: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": "agent",
        "observation": "run",
        "content": "x" * 400,
        "extras": {"command": f"echo {event_id}", "exit_code": 0},
        "timestamp": "2026-01-01T00:00:00",
    }


async def _latency(publisher: EventBus, receiver: EventBus, samples: int) -> list[float]:
    subscription = receiver.subscribe(CONVERSATION)
    await subscription.ready()
    values = []
    for event_id in range(samples):
        started = time.perf_counter()
        await publisher.publish(CONVERSATION, _payload(event_id))
        await subscription.get()
        values.append((time.perf_counter() - started) * 1000)
    subscription.close()
    return values


async def _rate(publisher: EventBus, receiver: EventBus, count: int) -> float:
    subscription = receiver.subscribe(CONVERSATION, max_queue=count + 1)
    await subscription.ready()
    started = time.perf_counter()
    for event_id in range(count):
        await publisher.publish(CONVERSATION, _payload(event_id))
        if event_id % 100 == 0:
            await asyncio.sleep(0)  # a loop yields between appends, as a real one does
    async with asyncio.timeout(60):  # a burst past the publisher's bound is cut short
        for _ in range(count):
            await subscription.get()
    elapsed = time.perf_counter() - started
    subscription.close()
    return count / elapsed


def _median_p99(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(ordered):.2f} / {p99:.2f} ms"


async def run(events: int) -> dict[str, str]:
    local = LocalEventBus()
    figures = {
        "in-process bus: latency": _median_p99(await _latency(local, local, 500)),
        "in-process bus: burst rate": f"{await _rate(local, local, events):,.0f} events/s",
    }
    with tempfile.TemporaryDirectory() as workdir:
        redis = await RedisServer(Path(workdir)).start()
        a, b = RedisNode(redis.url, "a"), RedisNode(redis.url, "b")
        a.start()
        b.start()
        try:
            figures["Redis, node A to node B: latency"] = _median_p99(
                await _latency(a.bus, b.bus, 500)
            )
            rate = await _rate(a.bus, b.bus, events)
            figures["Redis, node A to node B: burst rate"] = f"{rate:,.0f} events/s"
        finally:
            await a.aclose()
            await b.aclose()
            await redis.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=5_000,
        help="events in the burst (at most the 10,000 a node queues for Redis: past that the "
        "oldest are left to the store, which this bench does not read)",
    )
    args = parser.parse_args()
    for name, value in asyncio.run(run(args.events)).items():
        print(f"{name:40} {value}")


if __name__ == "__main__":
    main()
