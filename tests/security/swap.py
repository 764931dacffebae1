"""The attacker's swap loop: exchange a real directory and a symlink, as fast as it can.

``renameat2(RENAME_EXCHANGE)`` swaps two names atomically, so a server that checks a path
and opens it again by name sees the directory at the check and the symlink at the open.
It runs in a child process (no GIL shared with the server under test) for a fixed time.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

SWAPPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, seconds = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2]), float(sys.argv[3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
end, swaps = time.monotonic() + seconds, 0
while time.monotonic() < end:
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")
    swaps += 1
print(swaps, flush=True)
"""


async def start_swapping(a: Path, b: Path, seconds: float) -> asyncio.subprocess.Process:
    """Start exchanging ``a`` and ``b`` for ``seconds``; the process prints its swap count."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SWAPPER,
        str(a),
        str(b),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )


async def swap_count(process: asyncio.subprocess.Process) -> int:
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, "the swap loop failed"
    return int(out)
