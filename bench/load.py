"""The API under load: latencies while many conversations run at once.

``python -m bench.load [--count 200] [--steps 20] [--no-postgres]`` (also part of ``make bench``)

One ``convo serve`` per backend (fresh data dir; for PostgreSQL a fresh database), the
``process`` runtime and the scripted LLM server. ``count`` conversations are created at once,
each with a message, and each runs ``steps`` agent steps (a shell no-op per step, then
``finish``). While they run, probes measure what a user would wait for:

- create: ``POST /api/conversations`` of a new conversation without a message (its loop starts
  and waits for input);
- start: ``POST /start`` of that conversation after a ``/stop`` (a real launch);
- list: ``GET /api/conversations`` (first page);
- ``/alive``.

Every probe sample taken between the first create and the last finish counts; the creates of
the ``count`` conversations themselves are reported apart ("ramp create"). The probes run in
a process of their own: in this one, the event loop busy with the ramp's hundreds of
requests took up to half a second to get to a probe's response, which was counted as the
server's latency. The bench sees
the conversations finish by paging the conversation list (their agent states) twice a
second. At the end every conversation must have finished with gap-free event ids, or the
run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import queue
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.agent_loop import all_events
from bench.harness import ConvoServer, ScriptedLLMProcess
from bench.pg import DEFAULT_URL, databases, reachable
from bench.server_figures import percentile, server_settings
from convo.llm import scripted_server_script

PROBES = ("ramp create", "create", "start", "list", "/alive")


@dataclass
class Samples:
    """Latencies in seconds per probe."""

    values: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PROBES})
    errors: dict[str, int] = field(default_factory=dict)

    async def timed(self, probe: str, request: Any) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response: httpx.Response = await request
        except httpx.HTTPError:
            self.errors[probe] = self.errors.get(probe, 0) + 1
            return None
        self.values[probe].append(time.perf_counter() - began)
        if response.status_code != 200:
            self.errors[probe] = self.errors.get(probe, 0) + 1
        return response

    def summary(self, probe: str) -> tuple[float, float, float, int] | None:
        """(p50, p99, max) in ms and the sample count."""
        values = self.values[probe]
        if not values:
            return None
        return (
            percentile(values, 0.5) * 1000,
            percentile(values, 0.99) * 1000,
            max(values) * 1000,
            len(values),
        )


def _script(steps: int, count: int) -> tuple[list[dict[str, Any]], bool]:
    """The LLM's script: per conversation when the scripted server can (each conversation
    runs ``steps`` steps), else one shared script of ``count * steps`` steps."""
    per_conversation = hasattr(scripted_server_script, "assistant_turns")
    total = steps if per_conversation else steps * count
    return [
        {"tool": "execute_bash", "arguments": {"command": f": step {i}"}} for i in range(total)
    ], per_conversation


_ENDED = ("finished", "error", "stopped")


async def _probe_alive(client: httpx.AsyncClient, samples: Samples, done: asyncio.Event) -> None:
    while not done.is_set():
        await samples.timed("/alive", client.get("/alive"))
        await asyncio.sleep(0.02)


async def _probe_list(client: httpx.AsyncClient, samples: Samples, done: asyncio.Event) -> None:
    while not done.is_set():
        await samples.timed("list", client.get("/api/conversations", params={"limit": 20}))
        await asyncio.sleep(0.1)


async def _probe_create_start(
    client: httpx.AsyncClient, samples: Samples, done: asyncio.Event
) -> None:
    while not done.is_set():
        created = await samples.timed("create", client.post("/api/conversations", json={}))
        if created is not None and created.status_code == 200:
            cid = created.json()["conversation_id"]
            await client.post(f"/api/conversations/{cid}/stop")
            await samples.timed("start", client.post(f"/api/conversations/{cid}/start", json={}))
            await client.delete(f"/api/conversations/{cid}")
        await asyncio.sleep(0.2)


def _probe_process(base_url: str, ready: Any, stop: Any, results: Any) -> None:
    """The probes, in a process of their own, until ``stop`` is set; their samples are put
    on ``results``."""
    asyncio.run(_probe_until(base_url, ready, stop, results))


async def _probe_until(base_url: str, ready: Any, stop: Any, results: Any) -> None:
    samples = Samples()
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        probes = [
            asyncio.create_task(_probe_alive(client, samples, done), name="probe:/alive"),
            asyncio.create_task(_probe_list(client, samples, done), name="probe:list"),
            asyncio.create_task(_probe_create_start(client, samples, done), name="probe:create"),
        ]
        ready.set()
        await asyncio.to_thread(stop.wait)
        done.set()
        await asyncio.gather(*probes, return_exceptions=True)
    results.put((samples.values, samples.errors))


async def _wait_finished(
    client: httpx.AsyncClient, ids: list[str], timeout: float
) -> tuple[set[str], float]:
    """Page through the conversation list every half second until every conversation's
    agent has ended its turn (a few requests per round: polling each conversation's events
    instead made the bench itself hundreds of requests a second, more than the probes)."""
    wanted = set(ids)
    finished: set[str] = set()
    deadline = time.perf_counter() + timeout
    while len(finished) < len(wanted) and time.perf_counter() < deadline:
        page_id = None
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            while True:
                params: dict[str, Any] = {"limit": 100}
                if page_id:
                    params["page_id"] = page_id
                body = (await client.get("/api/conversations", params=params)).json()
                for info in body["results"]:
                    if info["conversation_id"] in wanted and info.get("agent_state") in _ENDED:
                        finished.add(info["conversation_id"])
                page_id = body.get("next_page_id")
                if not page_id:
                    break
        await asyncio.sleep(0.5)
    return finished, time.perf_counter()


async def run_load(
    workdir: Path, database_url: str | None, count: int, steps: int, timeout: float = 900
) -> dict[str, Any]:
    script, per_conversation = _script(steps, count)
    llm = await ScriptedLLMProcess(
        workdir / "llm", script, per_conversation=per_conversation
    ).start()
    server = ConvoServer(
        workdir,
        server_settings(
            workdir,
            database_url,
            llm_base_url=llm.base_url,
            max_iterations=steps + 10,
            max_concurrent_conversations=count + 100,
        ),
    )
    samples = Samples()
    try:
        await server.start()
        limits = httpx.Limits(max_connections=count + 16, max_keepalive_connections=count + 16)
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=120, limits=limits
        ) as client:
            spawn = multiprocessing.get_context("spawn")
            ready, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
            prober = spawn.Process(
                target=_probe_process,
                args=(server.base_url, ready, stop, results),
                name="bench-load-probes",
            )
            prober.start()
            try:
                if not await asyncio.to_thread(ready.wait, 60):
                    raise RuntimeError("the probe process did not start")
                began = time.perf_counter()
                created = await asyncio.gather(
                    *(
                        samples.timed(
                            "ramp create",
                            client.post("/api/conversations", json={"initial_user_msg": "go"}),
                        )
                        for _ in range(count)
                    )
                )
                ids = [r.json()["conversation_id"] for r in created if r and r.status_code == 200]
                finished, ended = await _wait_finished(client, ids, timeout)
            finally:
                stop.set()
                try:
                    values, errors = await asyncio.to_thread(results.get, True, 120)
                except queue.Empty:
                    values, errors = {}, {"probes": 1}
                await asyncio.to_thread(prober.join, 30)
                if prober.is_alive():
                    prober.kill()
            for probe, latencies in values.items():
                samples.values[probe].extend(latencies)
            samples.errors.update(errors)
            problems = [f"{count - len(ids)} creates failed"] if len(ids) < count else []
            if len(finished) < len(ids):
                problems.append(f"{len(ids) - len(finished)} did not finish")
            events = 0
            for cid in finished:
                stored = await all_events(client, cid)
                events += len(stored)
                if [e["id"] for e in stored] != list(range(len(stored))):
                    problems.append(f"{cid}: event ids not gap-free")
    finally:
        await server.terminate()
        await llm.stop()
    return {
        "samples": samples,
        "seconds": ended - began,
        "events": events,
        "per_conversation": per_conversation,
        "problems": problems,
    }


def render(results: dict[str, dict[str, Any]], count: int, steps: int) -> str:
    lines = [
        f"load: {count} conversations x {steps} steps at once (scripted LLM, process runtime)",
        "targets with 200 running: create and list p99 under 300 ms, /alive p99 under 50 ms",
        "",
        "| backend | probe | p50 | p99 | max | samples | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, result in results.items():
        samples: Samples = result["samples"]
        for probe in PROBES:
            figures = samples.summary(probe)
            if figures is None:
                lines.append(f"| {backend} | {probe} | - | - | - | 0 | - |")
                continue
            p50, p99, worst, n = figures
            lines.append(
                f"| {backend} | {probe} | {p50:.1f} ms | {p99:.1f} ms | {worst:.1f} ms | {n} | "
                f"{samples.errors.get(probe, 0)} |"
            )
    for backend, result in results.items():
        lines.append(
            f"\n{backend}: all done in {result['seconds']:.1f} s, {result['events']} events "
            f"({'own script per conversation' if result['per_conversation'] else 'shared script'})"
        )
        if result["problems"]:
            lines.append(f"{backend} PROBLEMS: {'; '.join(result['problems'][:5])}")
    return "\n".join(lines)


async def measure(
    root: Path, count: int, steps: int, postgres: str | None
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    print(f"load, {count} conversations:", flush=True)
    began = time.perf_counter()
    results["SQLite"] = await run_load(root / "load-sqlite", None, count, steps)
    print(f"  SQLite: {time.perf_counter() - began:.1f} s", flush=True)
    if postgres and await reachable(postgres):
        async with databases(postgres) as pool:
            began = time.perf_counter()
            results["PostgreSQL"] = await run_load(
                root / "load-postgres", await pool.new(), count, steps
            )
            print(f"  PostgreSQL: {time.perf_counter() - began:.1f} s", flush=True)
    else:
        print(f"  PostgreSQL: {'not reachable, ' if postgres else ''}skipped", flush=True)
    return results


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="convo-load-") as tmp:
        postgres = None if args.no_postgres else args.postgres
        results = await measure(Path(tmp), args.count, args.steps, postgres)
    print()
    print(render(results, args.count, args.steps))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--count", type=int, default=200, help="conversations at once")
    parser.add_argument("--steps", type=int, default=20, help="agent steps each")
    parser.add_argument("--postgres", default=DEFAULT_URL, help="base URL for fresh databases")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    asyncio.run(main(parser.parse_args()))
