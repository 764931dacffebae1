"""Agent-loop overhead per step, with a scripted LLM that answers at once.

A step is one LLM call (through litellm and HTTP to the scripted server), its action (the
shell no-op ``: <n>``, a round trip to the conversation's bash) and that action's result,
each stored and published. Every step's command differs (no stuck detection); once the
script runs out the model answers ``finish``.
Steps per second come from the stored events' timestamps: from the first action of any
conversation to the last finish, so that start-up and litellm's import do not count.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import ConvoServer, ScriptedLLMProcess
from bench.server_figures import server_settings


def _script(steps: int) -> list[dict[str, Any]]:
    return [{"tool": "execute_bash", "arguments": {"command": f": {i}"}} for i in range(steps)]


async def all_events(client: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        start = events[-1]["id"] + 1 if events else 0
        page = (
            await client.get(
                f"/api/conversations/{conversation_id}/events",
                params={"start_id": start, "limit": 100},
            )
        ).json()
        events.extend(page["events"])
        if not page["has_more"]:
            return events


def _finished(events: list[dict[str, Any]]) -> bool:
    return any(e.get("action") == "finish" for e in events)


async def steps_per_second(
    workdir: Path, database_url: str | None, conversations: int, steps: int
) -> float:
    llm = await ScriptedLLMProcess(workdir / "llm", _script(steps)).start()
    server = ConvoServer(
        workdir,
        server_settings(workdir, database_url, llm_base_url=llm.base_url, max_iterations=100_000),
    )
    try:
        await server.start()
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:
            created = await asyncio.gather(
                *(
                    client.post("/api/conversations", json={"initial_user_msg": "go"})
                    for _ in range(conversations)
                )
            )
            failed = [r for r in created if r.status_code != 200]
            if failed:
                raise RuntimeError(f"{len(failed)} creates failed, e.g. {failed[0].text[:300]}")
            ids = [r.json()["conversation_id"] for r in created]
            done: dict[str, list[dict[str, Any]]] = {}
            for _ in range(600):  # at most about two minutes
                for conversation_id in set(ids) - set(done):
                    events = await all_events(client, conversation_id)
                    if _finished(events):
                        done[conversation_id] = events
                if len(done) == len(ids):
                    break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("the agents did not finish")
    finally:
        await server.terminate()
        await llm.stop()
    actions = [e for events in done.values() for e in events if e.get("source") == "agent"]
    thoughts = sum(1 for e in actions if e.get("action") == "run")
    first = min(_time(e) for e in actions)
    last = max(_time(e) for e in actions if e.get("action") == "finish")
    return thoughts / (last - first).total_seconds()


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"])
