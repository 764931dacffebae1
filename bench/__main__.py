"""convo's benchmark suite: ``python -m bench [--quick]`` (``make bench``) prints the table.

Every figure comes from real processes on 127.0.0.1: ``convo serve`` subprocesses, each
with a fresh data directory (and, for PostgreSQL, a fresh database that is dropped after),
the ``process`` runtime unless stated, and the scripted LLM server where a model is needed.
PostgreSQL is measured when ``--postgres`` (default: the local server) is reachable.
The load table (``bench/load.py``, also runnable alone as ``python -m bench.load``) comes
next: latencies while ``--load-count`` conversations run at once. The cluster table
(``bench/cluster.py``, also ``python -m bench.cluster``) comes last: three nodes on one
PostgreSQL database and a Redis of its own (skipped without PostgreSQL or ``redis-server``).
Cold starts are measured beside the smallest FastAPI app's (``bench/reference_app.py``), a
reference for the machine's speed at that moment: cold-start figures of two machines compare
through it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

from bench import (
    agent_loop,
    cluster,
    first_task,
    load,
    sandbox_figures,
    server_figures,
    storage_figures,
)
from bench.harness import ConvoServer, guarded
from bench.pg import DEFAULT_URL, databases, reachable
from convo.runtime.select import bwrap_available

UrlFactory = Callable[[], Awaitable[str | None]]


async def _sqlite() -> str | None:
    return None  # the server's default: SQLite in its data directory


async def measure_backend(
    name: str, new_url: UrlFactory, root: Path, quick: bool
) -> dict[str, Any]:
    print(f"{name}:", flush=True)
    figures: dict[str, Any] = {}
    work = root / name
    await guarded(figures, "cold start", server_figures.cold_start(work / "cold", new_url, 3))
    await guarded(
        figures,
        "first task",
        first_task.first_task_figures(work / "first", await new_url(), 1 if quick else 3),
    )
    await guarded(
        figures, "/start", server_figures.start_latency(work / "start", await new_url(), quick)
    )
    if await sandbox_runtime_available(work / "probe"):
        await guarded(
            figures,
            "create → RUNNING, sandbox",
            server_figures.create_to_running(
                work / "sandboxed", await new_url(), "sandbox", 5 if quick else 20
            ),
        )
    for count, steps in ((1, 100 if quick else 300), (100, 500 if quick else 2000)):

        async def steps_figure(count: int = count, steps: int = steps) -> dict[str, Any]:
            rate = await agent_loop.steps_per_second(
                work / f"steps{count}", await new_url(), count, steps
            )
            return {f"steps_{count}": rate}

        await guarded(figures, f"agent loop x{count}", steps_figure())
    append_url = await new_url() or storage_figures.sqlite_url(work / "append")
    await guarded(
        figures, "appends", storage_figures.append_figures(append_url, 500 if quick else 2000)
    )
    await guarded(figures, "listing", server_figures.listing(work / "list", await new_url(), quick))
    await guarded(
        figures,
        "resume",
        server_figures.resume_after_restart(work / "resume", await new_url(), [82, 1500]),
    )
    return figures


async def sandbox_runtime_available(root: Path) -> bool:
    """Whether ``CONVO_RUNTIME=sandbox`` gives a bubblewrap sandbox on this machine."""
    if not await asyncio.to_thread(bwrap_available):
        return False
    settings = server_figures.server_settings(root, None, runtime="sandbox")
    server = ConvoServer(root, settings)
    try:
        await server.start()
        import httpx

        async with httpx.AsyncClient(base_url=server.base_url) as client:
            return bool((await client.get("/health")).json().get("runtime") == "sandbox")
    except Exception:
        return False
    finally:
        await server.terminate()


async def measure_footprint(root: Path, quick: bool) -> dict[str, Any]:
    print("idle conversations:", flush=True)
    result: dict[str, Any] = {}
    counts = [10, 100] if quick else [10, 100, 1000]
    began = time.perf_counter()
    result["process"] = await server_figures.idle_footprint(root / "idle", None, counts)
    print(f"  process runtime: {time.perf_counter() - began:.1f} s", flush=True)
    if await sandbox_runtime_available(root / "probe"):
        began = time.perf_counter()
        result["sandbox"] = await server_figures.idle_footprint(
            root / "idle-sandbox", None, [10, 100], runtime="sandbox"
        )
        print(f"  sandbox runtime: {time.perf_counter() - began:.1f} s", flush=True)
    return result


# --- the table ---------------------------------------------------------------------------
def _f(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return " / ".join(fmt.split("|")[i].format(v) for i, v in enumerate(value))
    return fmt.format(value)


ROWS: list[tuple[str, str, str, str]] = [
    ("cold start to the first 200 on /alive", "cold_start_s", "{:.2f} s", "3.9-4.6 s"),
    ("cold start: server CPU time (user + system) until then", "cold_start_cpu_s", "{:.2f} s", "-"),
    (
        "reference: the smallest FastAPI app's cold start, same machine, same moments",
        "reference_cold_start_s",
        "{:.2f} s",
        "-",
    ),
    (
        "cold start minus the reference's, run by run (what convo adds)",
        "cold_start_added_s",
        "{:.2f} s",
        "-",
    ),
    (
        "first start on a new data dir (creates the database): time / CPU",
        "first_start",
        "{:.2f} s|{:.2f} s",
        "-",
    ),
    ("idle RSS of the server", "idle_rss_mb", "{:.0f} MB", "346 MB"),
    (
        "fresh server: create → first action, OpenAI-compatible endpoint",
        "first_action_light_s",
        "{:.2f} s",
        "-",
    ),
    (
        "fresh server: create → first action, model through litellm",
        "first_action_litellm_s",
        "{:.2f} s",
        "-",
    ),
    (
        "server RSS after one task, OpenAI-compatible endpoint",
        "rss_after_task_light_mb",
        "{:.0f} MB",
        "~350 MB",
    ),
    (
        "server RSS after one task, model through litellm",
        "rss_after_task_litellm_mb",
        "{:.0f} MB",
        "-",
    ),
    (
        "/start on a running conversation, 1 client: median / p99 / req/s",
        "start_running_c1",
        "{:.2f} ms|{:.2f} ms|{:.0f}",
        "4.0 ms / 6.2 ms / -",
    ),
    (
        "/start on a running conversation, 32 clients: median / p99 / req/s",
        "start_running_c32",
        "{:.2f} ms|{:.2f} ms|{:.0f}",
        "-",
    ),
    ("create → RUNNING (median)", "create_to_running_s", "{:.3f} s", "1.07 s"),
    (
        "create → RUNNING, sandbox runtime (median)",
        "create_to_running_sandbox_s",
        "{:.3f} s",
        "-",
    ),
    (
        "/start of a stopped conversation → RUNNING (median)",
        "start_stopped_to_running_s",
        "{:.3f} s",
        "-",
    ),
    ("agent loop, instant LLM, 1 conversation", "steps_1", "{:.0f} steps/s", "-"),
    ("agent loop, instant LLM, 100 conversations at once", "steps_100", "{:.0f} steps/s", "-"),
    ("event append, 1 writer: median / p99", "append_ms", "{:.2f} ms|{:.2f} ms", "-"),
    ("event append throughput, 1 writer", "append_rate_1", "{:.0f} events/s", "-"),
    ("event append throughput, 32 writers", "append_rate_32", "{:.0f} events/s", "-"),
    (
        "list 2,000 conversations, first page: median / p99",
        "list_2000_ms",
        "{:.1f} ms|{:.1f} ms",
        "-",
    ),
    ("restart → RUNNING, 82-event conversation", "resume_82_s", "{:.2f} s", "-"),
    ("restart → RUNNING, 1,500-event conversation", "resume_1500_s", "{:.2f} s", "-"),
]


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({model}), {memory:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def render(
    results: dict[str, dict[str, Any]],
    footprint: dict[str, Any],
    quick: bool,
) -> str:
    backends = list(results)
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    lines = [
        f"convo benchmarks, {today}{' (--quick)' if quick else ''}",
        f"machine: {machine()}",
        "runtime: process (unsandboxed) unless stated; LLM: scripted server on 127.0.0.1",
        "",
        "| figure | " + " | ".join(backends) + " | OpenHands 0.53 |",
        "|---|" + "---|" * len(backends) + "---|",
    ]
    for label, key, fmt, reference in ROWS:
        cells = [_f(results[b].get(key), fmt) for b in backends]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {reference} |")
    lines += [
        "",
        "| running idle conversations | runtime | server RSS | server + sandboxes RSS | "
        "server + sandboxes PSS | processes | server MB per conversation | "
        "threads per conversation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for runtime, rows in footprint.items():
        for count, row in rows.items():
            lines.append(
                f"| {count} | {runtime} | {row['server_rss_mb']:.0f} MB | "
                f"{row['total_rss_mb']:.0f} MB | {row['total_pss_mb']:.0f} MB | "
                f"{row['processes']} | "
                f"{row['server_mb_per_conversation']:.2f} | "
                f"{row['threads_per_conversation']:.2f} |"
            )
    lines.append("| OpenHands 0.53 | cli | - | - | - | - | ~0.8 | 7 |")
    errors = {b: r["errors"] for b, r in results.items() if r.get("errors")}
    if errors:
        lines.append(f"\nfailed (see the tracebacks above): {errors}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="convo-bench-") as tmp:
        root = Path(tmp)
        results["SQLite"] = await measure_backend("SQLite", _sqlite, root, args.quick)
        if not args.no_postgres and await reachable(args.postgres):
            async with databases(args.postgres) as pool:
                results["PostgreSQL"] = await measure_backend(
                    "PostgreSQL", pool.new, root, args.quick
                )
        else:
            print("PostgreSQL: not reachable, skipped", flush=True)
        footprint = await measure_footprint(root, args.quick)
        print("sandboxed workspaces:", flush=True)
        workspaces = await sandbox_figures.run(10 if args.quick else 20)
        postgres = None if args.no_postgres else args.postgres
        count = 50 if args.quick else args.load_count
        under_load = await load.measure(root / "load", count, 20, postgres)
        nodes = await cluster.run(root / "cluster", postgres, args.quick)
    print(f"\n(took {time.perf_counter() - began:.0f} s)\n")
    print(render(results, footprint, args.quick))
    print("\nworkspace preparation (create → shell ready → first command), one at a time:")
    print(sandbox_figures.format_rows(workspaces))
    print()
    print(load.render(under_load, count, 20))
    print()
    print(cluster.render(nodes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, up to 100 idle")
    parser.add_argument("--postgres", default=DEFAULT_URL, help="base URL for fresh databases")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--load-count", type=int, default=200, help="conversations at once in the load table"
    )
    asyncio.run(main(parser.parse_args()))
