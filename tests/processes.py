"""Whether host processes still live, for tests that check nothing is left behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer exists or is only a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def wait_gone(pids: list[int], seconds: float = 5.0) -> list[int]:
    """Wait up to ``seconds`` for every one of ``pids`` to be gone; returns those still
    alive then (empty: all gone)."""
    deadline = time.monotonic() + seconds
    alive = [pid for pid in pids if not pid_gone(pid)]
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        alive = [pid for pid in alive if not pid_gone(pid)]
    return alive
