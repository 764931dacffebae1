"""The first task on a freshly started server: time to its first action, and memory after.

Each run starts the scripted LLM server and a fresh ``convo serve``, creates a conversation
with a message as soon as /alive answers, and measures from the create request until the
agent's first action (a shell command the scripted model asks for) is stored; then, once the
task has finished, the server's RSS. A model on an OpenAI-compatible endpoint
(``openai/scripted``) goes through convo's light client; ``deepseek/scripted`` (litellm's
DeepSeek provider, pointed at the same scripted server) goes through litellm, so its first
call pays for importing it.

``python -m bench.first_task`` prints the figures alone.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import ConvoServer, ScriptedLLMProcess
from bench.server_figures import server_settings

LIGHT_MODEL = "openai/scripted"
LITELLM_MODEL = "deepseek/scripted"
_STEPS = [{"tool": "execute_bash", "arguments": {"command": "echo first"}}]


async def _events(client: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
    page = await client.get(
        f"/api/conversations/{conversation_id}/events", params={"start_id": 0, "limit": 100}
    )
    page.raise_for_status()
    events: list[dict[str, Any]] = page.json()["events"]
    return events


async def _wait(
    client: httpx.AsyncClient, conversation_id: str, done: Any, timeout: float = 300
) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if done(await _events(client, conversation_id)):
            return
        await asyncio.sleep(0.005)
    raise RuntimeError(f"{conversation_id}: timed out after {timeout} s")


def _first_action(events: list[dict[str, Any]]) -> bool:
    return any(e.get("action") == "run" and e.get("source") == "agent" for e in events)


def _finished(events: list[dict[str, Any]]) -> bool:
    return any((e.get("extras") or {}).get("agent_state") == "finished" for e in events)


async def one_task(workdir: Path, database_url: str | None, model: str) -> tuple[float, float]:
    """(seconds from create to the first action, server RSS MB after the task)."""
    llm = await ScriptedLLMProcess(workdir / "llm", steps=_STEPS).start()
    try:
        settings = server_settings(
            workdir, database_url, llm_model=model, llm_base_url=llm.base_url
        )
        server = ConvoServer(workdir / "server", settings)
        try:
            await server.start()
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
                began = time.perf_counter()
                created = await client.post(
                    "/api/conversations", json={"initial_user_msg": "run one command"}
                )
                created.raise_for_status()
                conversation_id = str(created.json()["conversation_id"])
                await _wait(client, conversation_id, _first_action)
                first_action = time.perf_counter() - began
                await _wait(client, conversation_id, _finished)
            await asyncio.sleep(0.5)
            rss = server.footprint()[0]
        finally:
            await server.terminate()
    finally:
        await llm.stop()
    return first_action, rss


async def first_task_figures(workdir: Path, database_url: str | None, runs: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for label, model, count in (("light", LIGHT_MODEL, runs), ("litellm", LITELLM_MODEL, runs)):
        times, memory = [], []
        for run in range(count):
            first, rss = await one_task(workdir / f"{label}{run}", database_url, model)
            times.append(first)
            memory.append(rss)
        figures[f"first_action_{label}_s"] = statistics.median(times)
        figures[f"rss_after_task_{label}_mb"] = statistics.median(memory)
    return figures


async def _main() -> None:
    with tempfile.TemporaryDirectory(prefix="convo-bench-first-") as tmp:
        figures = await first_task_figures(Path(tmp), None, 3)
    for name, value in figures.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    asyncio.run(_main())
