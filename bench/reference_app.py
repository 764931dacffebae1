"""A reference for this machine's speed: the smallest FastAPI app on uvicorn.

``python -m bench.reference_app PORT`` serves ``GET /alive`` on 127.0.0.1:PORT and nothing
else. :func:`cold_start` times, like convo's cold-start figure, how long this app takes from
its process start to its first 200: a floor no FastAPI server on the same machine and Python
can go below. Cold-start figures taken on different machines compare through it (convo's
cold start minus this one is what convo adds), since the CPU of machines of the same kind
can differ by a factor of two.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time

import httpx

from bench.harness import PYTHON, base_env, free_port


async def _one_start(port: int, timeout: float = 30.0) -> float:
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "bench.reference_app", str(port), env=base_env()
    )
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            while time.perf_counter() - began < timeout:
                if process.returncode is not None:
                    raise RuntimeError("the reference app exited at start-up")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/alive")).status_code == 200:
                        return time.perf_counter() - began
                await asyncio.sleep(0.01)
        raise RuntimeError(f"the reference app did not answer in {timeout} s")
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def cold_start(runs: int = 5) -> float:
    """Median seconds from process start to the first 200 of the reference app."""
    return statistics.median([await _one_start(free_port()) for _ in range(runs)])


def serve(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/alive")
    async def alive() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
