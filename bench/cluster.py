"""Cluster figures: three ``convo serve`` nodes on one PostgreSQL database and one Redis.

``python -m bench.cluster [--quick] [--postgres URL] [--lease 3]`` (also part of ``make bench``)

The nodes, the scripted LLM server and a Redis server of the benchmark's own run on
127.0.0.1 (``bench.cluster_nodes``), with a short lease so that takeovers take seconds:

- takeover after ``kill -9`` and after ``SIGSTOP`` of the owner: from the signal until another
  node stores the conversation's next event (median of several, the owner rotating);
- ``/start`` of a stopped conversation sent to a node that did not run it: until the answer,
  and until that node reports RUNNING; ``/start`` of a running conversation sent to its owner
  and to another node;
- event delivery: from an event's timestamp (taken by the owner as it stores the event) until
  an SSE client receives it, on the owner and on another node;
- events per second: conversations with an instant LLM all created on one node, then the same
  spread over three (on one machine the nodes share its cores, PostgreSQL and the LLM).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.cluster_nodes import FINISH, Cluster, Node, steps_script
from bench.harness import ScriptedLLMProcess, guarded
from bench.pg import DEFAULT_URL, databases, reachable
from bench.redis_server import RedisServer
from bench.server_figures import percentile

SCRIPTS: dict[str, dict[str, Any]] = {
    "work": steps_script(600, 0.1),  # keeps storing events until stopped
    "paced": steps_script(60, 0.05),
    "fast": steps_script(60, 0.0),
    "idle": {"steps": [FINISH], "when_exhausted": FINISH},
}
Figures = dict[str, Any]
CONVERSATIONS = 6  # at once, for events per second


async def _until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.01
) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
        except httpx.HTTPError:
            result = False
        if result:
            return
        await asyncio.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


async def _stop(node: Node, conversation_id: str) -> None:
    async with node.client() as client:
        await client.post(f"/api/conversations/{conversation_id}/stop")


async def takeover(cluster: Cluster, node: Node, how: str) -> float:
    """Seconds from killing or freezing the owner of a conversation created on ``node`` until
    another node shows a newer event."""
    conversation_id = await cluster.create(node, "work")
    await _until(lambda: len(cluster.lines(conversation_id)) >= 3, 60, "the task to work")
    owner = next(iter(cluster.owners(conversation_id)), node)
    watcher = next(n for n in cluster.nodes if n is not owner)
    if how == "kill":
        await owner.server.kill()
    else:
        owner.freeze()
    began = time.perf_counter()
    last = (await cluster.events(watcher, conversation_id))[-1]["id"]  # the owner is silent
    try:
        await _until(
            lambda: cluster.events(watcher, conversation_id, start_id=last + 1), 120, "takeover"
        )
        return time.perf_counter() - began
    finally:
        await cluster.revive()
        await _stop(watcher, conversation_id)


async def takeovers(cluster: Cluster, how: str, samples: int) -> list[float]:
    nodes = cluster.nodes
    return [await takeover(cluster, nodes[i % len(nodes)], how) for i in range(samples)]


async def start_latency(cluster: Cluster, samples: int) -> Figures:
    a, b = cluster.nodes[0], cluster.nodes[1]
    answered, running = [], []
    conversation_id = await cluster.create(a, "idle")
    await _until(lambda: cluster.finishes(a, conversation_id), 60, "the first answer")
    for i in range(samples):
        node = cluster.nodes[(i + 1) % len(cluster.nodes)]  # never the one that ran it last
        await _stop(cluster.nodes[i % len(cluster.nodes)], conversation_id)
        async with node.client() as client:
            began = time.perf_counter()
            response = await client.post(f"/api/conversations/{conversation_id}/start", json={})
            answered.append(time.perf_counter() - began)
            response.raise_for_status()
            await _until(lambda: _has_status(client, conversation_id, "RUNNING"), 60, "RUNNING")
            running.append(time.perf_counter() - began)
    owner = next(iter(cluster.owners(conversation_id)), a)
    other = b if owner is not b else a
    on = {}
    for label, node in (("owner", owner), ("other", other)):
        times = []
        async with node.client() as client:
            for _ in range(samples * 5):
                began = time.perf_counter()
                (await client.post(f"/api/conversations/{conversation_id}/start", json={}))
                times.append(time.perf_counter() - began)
        on[label] = times
    await _stop(a, conversation_id)
    return {
        "start_stopped_answer_ms": statistics.median(answered) * 1000,
        "start_stopped_running_ms": statistics.median(running) * 1000,
        "start_running_owner_ms": _median_p99(on["owner"]),
        "start_running_other_ms": _median_p99(on["other"]),
    }


async def _has_status(client: httpx.AsyncClient, conversation_id: str, status: str) -> bool:
    info = (await client.get(f"/api/conversations/{conversation_id}")).json()
    return bool(info and info["status"] == status)


def _median_p99(values: list[float]) -> tuple[float, float]:
    return statistics.median(values) * 1000, percentile(values, 0.99) * 1000


async def _sse_delays(node: Node, conversation_id: str, out: list[float]) -> None:
    """Append, per stored event received, the seconds since its timestamp; until cancelled."""
    url = f"/api/conversations/{conversation_id}/events/stream"
    async with (
        httpx.AsyncClient(base_url=node.base_url, timeout=httpx.Timeout(10, read=60)) as client,
        client.stream("GET", url, headers={"Last-Event-ID": "-1"}) as response,
    ):
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:") and kind == "event":
                event = json.loads(line.partition(":")[2])
                stamp = datetime.datetime.fromisoformat(event["timestamp"])
                if stamp.tzinfo is None:  # the wire's timestamps are UTC without an offset
                    stamp = stamp.replace(tzinfo=datetime.UTC)
                now = datetime.datetime.now(datetime.UTC)
                out.append((now - stamp).total_seconds())


async def delivery(cluster: Cluster) -> Figures:
    owner, other = cluster.nodes[0], cluster.nodes[2]
    conversation_id = await cluster.create(owner, "paced")
    delays: dict[str, list[float]] = {"owner": [], "other": []}
    readers = [
        asyncio.create_task(_sse_delays(node, conversation_id, delays[label]), name=label)
        for label, node in (("owner", owner), ("other", other))
    ]
    try:
        await _until(lambda: cluster.finishes(owner, conversation_id), 120, "the task to finish")
        await asyncio.sleep(0.5)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await _stop(owner, conversation_id)
    # the replay of events stored before a client connected is not delivery: live ones only
    live = {label: values[5:] for label, values in delays.items()}
    return {f"delivery_{label}_ms": _median_p99(values) for label, values in live.items()}


async def throughput(cluster: Cluster, nodes: list[Node], conversations: int) -> float:
    """Events stored per second while ``conversations`` instant-LLM tasks run on ``nodes``."""
    began = time.perf_counter()
    ids = [await cluster.create(nodes[i % len(nodes)], "fast") for i in range(conversations)]
    for conversation_id in ids:
        # polled gently: reading a whole conversation's events is work for the node too
        await _until(lambda c=conversation_id: cluster.finishes(nodes[0], c), 300, "finish", 0.25)
    elapsed = time.perf_counter() - began
    total = 0
    for conversation_id in ids:
        total += len(await cluster.events(nodes[0], conversation_id))
        await _stop(nodes[0], conversation_id)
    return total / elapsed


async def measure(root: Path, database_url: str, quick: bool, lease: float) -> Figures:
    redis = await RedisServer(root / "redis").start()
    llm = await ScriptedLLMProcess(root / "llm", per_conversation=True, scripts=SCRIPTS).start()
    cluster = Cluster(
        root, database_url, redis.url, llm, lease, {"max_concurrent_conversations": "100"}
    )
    cluster.add_nodes()
    figures: Figures = {"lease_seconds": lease}
    samples = 3 if quick else 5

    async def takeover_figures(how: str) -> Figures:
        return {f"takeover_{how}": await takeovers(cluster, how, samples)}

    async def throughput_figures() -> Figures:
        return {
            "events_per_s_1": await throughput(cluster, cluster.nodes[:1], CONVERSATIONS),
            "events_per_s_3": await throughput(cluster, cluster.nodes, CONVERSATIONS),
        }

    try:
        await cluster.start()
        await guarded(figures, "takeover after kill -9", takeover_figures("kill"))
        await guarded(figures, "takeover after SIGSTOP", takeover_figures("stop"))
        await guarded(figures, "/start", start_latency(cluster, samples * 2))
        await guarded(figures, "event delivery", delivery(cluster))
        await guarded(figures, "events per second", throughput_figures())
    finally:
        await cluster.aclose()
        await llm.stop()
        await redis.stop()
    return figures


def render(figures: Figures) -> str:
    def takeover(key: str) -> str:
        values = figures.get(key)
        if not values:
            return "-"
        spread = f"{min(values):.2f}-{max(values):.2f}, n={len(values)}"
        return f"{statistics.median(values):.2f} s ({spread})"

    def pair(key: str) -> str:
        value = figures.get(key)
        return "-" if value is None else f"{value[0]:.1f} ms / {value[1]:.1f} ms"

    def single(key: str, fmt: str) -> str:
        value = figures.get(key)
        return "-" if value is None else fmt.format(value)

    lease = figures.get("lease_seconds")
    rows = [
        (
            f"takeover after kill -9 of the owner (lease {lease} s): median (min-max)",
            takeover("takeover_kill"),
        ),
        (
            f"takeover after SIGSTOP of the owner (lease {lease} s): median (min-max)",
            takeover("takeover_stop"),
        ),
        (
            "/start of a stopped conversation on another node: answer (median)",
            single("start_stopped_answer_ms", "{:.0f} ms"),
        ),
        (
            "/start of a stopped conversation on another node: until RUNNING (median)",
            single("start_stopped_running_ms", "{:.0f} ms"),
        ),
        (
            "/start of a running conversation, on its owner: median / p99",
            pair("start_running_owner_ms"),
        ),
        (
            "/start of a running conversation, on another node: median / p99",
            pair("start_running_other_ms"),
        ),
        ("event delivery to an SSE client on the owner: median / p99", pair("delivery_owner_ms")),
        (
            "event delivery to an SSE client on another node: median / p99",
            pair("delivery_other_ms"),
        ),
        (
            f"events stored per second, {CONVERSATIONS} conversations on one node",
            single("events_per_s_1", "{:.0f}"),
        ),
        (
            f"events stored per second, {CONVERSATIONS} conversations over three nodes",
            single("events_per_s_3", "{:.0f}"),
        ),
    ]
    lines = [
        "cluster: 3 nodes, PostgreSQL + Redis, process runtime, scripted LLM, one machine",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in rows),
    ]
    if figures.get("errors"):
        lines.append(f"\nfailed: {figures['errors']}")
    return "\n".join(lines)


async def run(root: Path, postgres: str | None, quick: bool, lease: float = 3.0) -> Figures:
    """The figures, or why there are none (``errors``)."""
    print("cluster:", flush=True)
    if shutil.which("redis-server") is None:
        return {"errors": ["redis-server is not installed"]}
    if not postgres or not await reachable(postgres):
        return {"errors": ["PostgreSQL is not reachable"]}
    began = time.perf_counter()
    async with databases(postgres) as pool:
        try:
            figures = await measure(root, await pool.new(), quick, lease)
        except Exception as exc:
            traceback.print_exc()
            figures = {"errors": [repr(exc)]}
    print(f"  cluster: {time.perf_counter() - began:.1f} s", flush=True)
    return figures


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="convo-bench-") as tmp:
        figures = await run(Path(tmp), args.postgres, args.quick, args.lease)
    print()
    print(render(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--postgres", default=DEFAULT_URL, help="base URL for a fresh database")
    parser.add_argument("--lease", type=float, default=3.0, help="CONVO_LEASE_SECONDS")
    asyncio.run(main(parser.parse_args()))
