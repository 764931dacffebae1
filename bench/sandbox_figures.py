"""Sandboxed workspaces: time to prepare one, and the memory an idle one costs.

``python -m bench.sandbox_figures [--count N]`` starts N bubblewrap sandboxes with an
isolated network, N with none, and, for comparison, N process sandboxes, one after the
other, each through the real factory, timing ``create → start → first command`` for each,
then keeps each set idle and sums the memory of their processes (RSS, and PSS where the
kernel reports it, which splits shared pages fairly). The slirp4netns process of an isolated
sandbox counts as one of its processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from convo.runtime.base import Sandbox, SandboxFactory, SandboxSpec
from convo.runtime.network import NetworkMode
from convo.runtime.select import bwrap_available, choose_sandbox_factory


def _tree_memory(root_pids: list[int]) -> tuple[int, int, int]:
    """(processes, RSS bytes, PSS bytes) of the given processes and all their descendants."""
    seen: dict[int, psutil.Process] = {}
    for pid in root_pids:
        try:
            parent = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        for proc in [parent, *parent.children(recursive=True)]:
            seen[proc.pid] = proc
    rss = pss = 0
    for proc in seen.values():
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return len(seen), rss, pss


async def measure(
    factory: SandboxFactory, count: int, root: Path, label: str | None = None
) -> dict[str, Any]:
    own = psutil.Process()
    before = {p.pid for p in own.children(recursive=True)}
    sandboxes: list[Sandbox] = []
    timings: list[float] = []
    try:
        for index in range(count):
            spec = SandboxSpec(conversation_id=f"bench{index}", workspace=root / f"ws{index}")
            began = time.perf_counter()
            sandbox = factory.create(spec)
            await sandbox.start()
            result = await sandbox.run("true")
            timings.append(time.perf_counter() - began)
            assert result.exit_code == 0, result.output
            sandboxes.append(sandbox)
        await asyncio.sleep(0.5)  # let start-up transients settle
        children = [p.pid for p in own.children() if p.pid not in before]
        processes, rss, pss = _tree_memory(children)
    finally:
        await asyncio.gather(*(s.close() for s in sandboxes), return_exceptions=True)
    timings.sort()
    return {
        "runtime": label or factory.name,
        "count": count,
        "prepare_median_ms": statistics.median(timings) * 1000,
        "prepare_p95_ms": timings[int(0.95 * (len(timings) - 1))] * 1000,
        "processes_per_conversation": processes / count,
        "rss_mb_per_conversation": rss / count / 2**20,
        "pss_mb_per_conversation": pss / count / 2**20,
    }


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = [
        "runtime           count  prepare median ms  p95 ms  procs/conv  RSS MB/conv  PSS MB/conv",
    ]
    for row in rows:
        lines.append(
            f"{row['runtime']:<16} {row['count']:>6} {row['prepare_median_ms']:>18.1f} "
            f"{row['prepare_p95_ms']:>7.1f} {row['processes_per_conversation']:>11.1f} "
            f"{row['rss_mb_per_conversation']:>12.2f} {row['pss_mb_per_conversation']:>12.2f}"
        )
    return "\n".join(lines)


async def run(
    count: int, networks: tuple[NetworkMode, ...] = ("isolated", "none")
) -> list[dict[str, Any]]:
    """Rows for the bubblewrap sandbox with each network mode, then the process sandbox;
    an isolated network needs root (see :mod:`convo.runtime.network`)."""
    if os.geteuid() != 0:
        networks = tuple(n for n in networks if n != "isolated")
    rows = []
    with tempfile.TemporaryDirectory(prefix="convo-bench-sandbox-") as tmp:
        if await asyncio.to_thread(bwrap_available):
            for network in networks:
                factory = choose_sandbox_factory("sandbox", network=network)
                root = Path(tmp) / f"s-{network}"
                rows.append(await measure(factory, count, root, f"sandbox/{network}"))
        rows.append(await measure(choose_sandbox_factory("process"), count, Path(tmp) / "p"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    print(format_rows(asyncio.run(run(args.count))))


if __name__ == "__main__":
    main()
