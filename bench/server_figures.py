"""Figures measured against a real ``convo serve`` subprocess over HTTP on 127.0.0.1.

Every function starts its own server(s) in a fresh work directory (and database) and returns
a dict of named figures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import reference_app
from bench.harness import ConvoServer, ScriptedLLMProcess
from bench.seed import seed_conversations, seed_history

Figures = dict[str, Any]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def server_settings(workdir: Path, database_url: str | None, **extra: Any) -> dict[str, str]:
    settings = {
        "data_dir": str(workdir / "data"),
        "llm_model": "openai/scripted",
        "llm_base_url": "http://127.0.0.1:9/v1",
        "llm_api_key": "bench-key-0123",
        "runtime": "process",
        "max_concurrent_conversations": "2000",
    }
    if database_url:
        settings["database_url"] = database_url
    settings.update({k: str(v) for k, v in extra.items()})
    return settings


async def wait_status(
    client: httpx.AsyncClient, conversation_id: str, wanted: str, timeout: float = 60
) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        info = (await client.get(f"/api/conversations/{conversation_id}")).json()
        if info and info["status"] == wanted:
            return
        await asyncio.sleep(0.002)
    raise RuntimeError(f"{conversation_id} never became {wanted}")


async def _create(client: httpx.AsyncClient, message: str | None = None) -> str:
    body = {"initial_user_msg": message} if message else {}
    response = await client.post("/api/conversations", json=body)
    response.raise_for_status()
    return str(response.json()["conversation_id"])


# --- cold start, idle memory, /start -------------------------------------------------------
async def cold_start(
    workdir: Path, url_for: Callable[[], Awaitable[str | None]], runs: int
) -> Figures:
    """Each run starts a server on a new data dir (and database), which creates the schema,
    stops it, and times a second start on the same data: a server's usual start. Both
    figures are reported; idle RSS is the second server's. Right after each second start,
    the smallest FastAPI app (``bench.reference_app``) is started too: the difference of the
    two, taken run by run, is what convo adds to any FastAPI server's start on this machine
    at that moment, a figure that compares across machines."""
    times, cpu, first, first_cpu, rss, reference, added = [], [], [], [], [], [], []
    for run in range(runs):
        server = ConvoServer(
            workdir / f"cold{run}", server_settings(workdir / f"cold{run}", await url_for())
        )
        for start_times, start_cpu in ((first, first_cpu), (times, cpu)):
            try:
                start_times.append(await server.start())
                # CPU seconds the server spent until then: what a busy machine cannot inflate
                used = psutil.Process(server.pid).cpu_times()
                start_cpu.append(used.user + used.system)
                if start_times is times:
                    await asyncio.sleep(0.5)
                    rss.append(server.footprint()[0])
            finally:
                await server.terminate()
        reference.append(await reference_app.cold_start(runs=1))
        added.append(times[-1] - reference[-1])
    return {
        "cold_start_s": statistics.median(times),
        "cold_start_cpu_s": statistics.median(cpu),
        "reference_cold_start_s": statistics.median(reference),
        "cold_start_added_s": statistics.median(added),
        "first_start": (statistics.median(first), statistics.median(first_cpu)),
        "idle_rss_mb": statistics.median(rss),
    }


async def _hammer(base_url: str, path: str, clients: int, total: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    per_client = total // clients

    async def one_client() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            for _ in range(per_client):
                began = time.perf_counter()
                response = await client.post(path, json={})
                latencies.append(time.perf_counter() - began)
                assert response.status_code == 200, response.text

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies, time.perf_counter() - began


async def start_latency(workdir: Path, database_url: str | None, quick: bool) -> Figures:
    """/start on a running conversation; create → RUNNING; /start of a stopped one → RUNNING."""
    server = ConvoServer(workdir, server_settings(workdir, database_url))
    figures: Figures = {}
    try:
        await server.start()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            conversation_id = await _create(client)
            await wait_status(client, conversation_id, "RUNNING")
            path = f"/api/conversations/{conversation_id}/start"
            for _ in range(50):  # warm-up
                await client.post(path, json={})
            for clients in (1, 32):
                total = (500 if quick else 2000) if clients == 1 else (1600 if quick else 6400)
                latencies, elapsed = await _hammer(server.base_url, path, clients, total)
                figures[f"start_running_c{clients}"] = (
                    statistics.median(latencies) * 1000,
                    percentile(latencies, 0.99) * 1000,
                    len(latencies) / elapsed,
                )
            samples = 5 if quick else 20
            create_times, restart_times = [], []
            for _ in range(samples):
                began = time.perf_counter()
                conversation_id = await _create(client)
                await wait_status(client, conversation_id, "RUNNING")
                create_times.append(time.perf_counter() - began)
                await client.post(f"/api/conversations/{conversation_id}/stop")
                began = time.perf_counter()
                await client.post(f"/api/conversations/{conversation_id}/start", json={})
                await wait_status(client, conversation_id, "RUNNING")
                restart_times.append(time.perf_counter() - began)
                await client.post(f"/api/conversations/{conversation_id}/stop")
            figures["create_to_running_s"] = statistics.median(create_times)
            figures["start_stopped_to_running_s"] = statistics.median(restart_times)
    finally:
        await server.terminate()
    return figures


async def create_to_running(
    workdir: Path, database_url: str | None, runtime: str, samples: int
) -> Figures:
    """create → RUNNING (median) on a server of the given runtime (``sandbox``: each
    conversation's shell in its bubblewrap sandbox)."""
    server = ConvoServer(workdir, server_settings(workdir, database_url, runtime=runtime))
    times: list[float] = []
    try:
        await server.start()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            for sample in range(samples + 2):  # the first two warm up
                began = time.perf_counter()
                conversation_id = await _create(client)
                await wait_status(client, conversation_id, "RUNNING")
                if sample >= 2:
                    times.append(time.perf_counter() - began)
                await client.post(f"/api/conversations/{conversation_id}/stop")
    finally:
        await server.terminate()
    return {f"create_to_running_{runtime}_s": statistics.median(times)}


# --- many idle conversations ---------------------------------------------------------------
async def idle_footprint(
    workdir: Path, database_url: str | None, counts: list[int], runtime: str = "process"
) -> Figures:
    """RSS and processes with N running idle conversations (each waits for its user)."""
    server = ConvoServer(workdir, server_settings(workdir, database_url, runtime=runtime))
    figures: Figures = {}
    try:
        await server.start()
        await asyncio.sleep(0.5)
        base_rss, _total, _procs, _pss = server.footprint()
        base_threads = _threads(server)
        running = 0
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=120, limits=limits
        ) as client:
            semaphore = asyncio.Semaphore(32)

            async def one() -> str:
                async with semaphore:
                    return await _create(client)

            for count in counts:
                ids = await asyncio.gather(*(one() for _ in range(count - running)))
                for conversation_id in ids:
                    await wait_status(client, conversation_id, "RUNNING", timeout=300)
                running = count
                await asyncio.sleep(1.0)
                own, total, processes, proportional = server.footprint()
                figures[count] = {
                    "server_rss_mb": own,
                    "total_rss_mb": total,
                    "total_pss_mb": proportional,
                    "processes": processes,
                    "server_mb_per_conversation": (own - base_rss) / count,
                    "threads_per_conversation": (_threads(server) - base_threads) / count,
                }
    finally:
        await server.terminate(timeout=120)
    return figures


def _threads(server: ConvoServer) -> int:
    import psutil

    return int(psutil.Process(server.pid).num_threads())


# --- listing and resuming --------------------------------------------------------------------
async def listing(workdir: Path, database_url: str | None, quick: bool) -> Figures:
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'data' / 'convo.db'}"
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    await seed_conversations(url, 2000)
    server = ConvoServer(workdir, server_settings(workdir, database_url))
    try:
        await server.start()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            latencies = []
            for _ in range(20 if quick else 100):
                began = time.perf_counter()
                page = await client.get("/api/conversations", params={"limit": 20})
                latencies.append(time.perf_counter() - began)
                assert len(page.json()["results"]) == 20
    finally:
        await server.terminate()
    return {
        "list_2000_ms": (statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000)
    }


async def resume_after_restart(
    workdir: Path, database_url: str | None, sizes: list[int]
) -> Figures:
    """A conversation of N events that was running when the server stopped: seconds from the
    server's start until the conversation is RUNNING again (agent rebuilt from its events)."""
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'data' / 'convo.db'}"
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    for size in sizes:
        await seed_history(url, f"resume{size}", size, running=True)
    llm = await ScriptedLLMProcess(workdir / "llm").start()
    figures: Figures = {}
    try:
        server = ConvoServer(
            workdir, server_settings(workdir, database_url, llm_base_url=llm.base_url)
        )
        began = time.perf_counter()
        figures["resume_cold_start_s"] = await server.start()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            pending = {f"resume{size}": size for size in sizes}
            while pending and time.perf_counter() - began < 60:
                for conversation_id, size in list(pending.items()):
                    info = (await client.get(f"/api/conversations/{conversation_id}")).json()
                    if info["status"] == "RUNNING":
                        figures[f"resume_{size}_s"] = time.perf_counter() - began
                        del pending[conversation_id]
                await asyncio.sleep(0.002)
        await server.terminate()
    finally:
        await llm.stop()
    return figures
