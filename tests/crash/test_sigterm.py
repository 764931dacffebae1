"""SIGTERM with 20 conversations running commands: the server exits within the grace period,
leaves no process behind, and resumes all 20 when it starts again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psutil
import pytest
from bench.harness import ConvoServer, ScriptedLLMProcess

from tests.crash.observer import wait_for

CONVERSATIONS = 20
GRACE_SECONDS = 3.0


async def _running_a_command(client: httpx.AsyncClient, conversation_id: str) -> bool:
    page = await client.get(
        f"/api/conversations/{conversation_id}/events", params={"start_id": 0, "limit": 100}
    )
    return any(e.get("action") == "run" for e in page.json()["events"])


# Its own waits add up to about 260 s in the worst case (two server starts of up to 60 s,
# 60 s for the conversations to get busy, 20 s for their resume, two terminates of up to 30 s).
@pytest.mark.timeout(300)
async def test_sigterm_with_20_running_conversations(tmp_path: Path) -> None:
    llm = await ScriptedLLMProcess(
        tmp_path / "llm",
        when_exhausted={"tool": "execute_bash", "arguments": {"command": "sleep 30"}},
    ).start()
    server = ConvoServer(
        tmp_path,
        {
            "data_dir": str(tmp_path / "data"),
            "llm_model": "openai/scripted",
            "llm_base_url": llm.base_url,
            "llm_api_key": "bench-key-0123",
            "runtime": "process",
            "max_concurrent_conversations": str(CONVERSATIONS + 5),
            "shutdown_grace_seconds": str(GRACE_SECONDS),
        },
    )
    try:
        await server.start(timeout=60)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            created = await asyncio.gather(
                *(
                    client.post("/api/conversations", json={"initial_user_msg": f"task {i}"})
                    for i in range(CONVERSATIONS)
                )
            )
            ids = [r.json()["conversation_id"] for r in created]
            busy: set[str] = set()

            async def all_busy() -> None:
                for _ in range(600):
                    for conversation_id in set(ids) - busy:
                        if await _running_a_command(client, conversation_id):
                            busy.add(conversation_id)
                    if len(busy) == CONVERSATIONS:
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"only {len(busy)} conversations got busy")

            await asyncio.wait_for(all_busy(), 60)
        children = server.descendants()
        assert len(children) >= 2 * CONVERSATIONS  # a shell and its sleep each

        elapsed, _code = await server.terminate(timeout=30)
        assert elapsed < GRACE_SECONDS, f"took {elapsed:.2f} s"
        survivors = [p.pid for p in children if p.is_running() and p.status() != "zombie"]
        assert survivors == []
        assert not list((tmp_path / "data" / "run").glob("*.pid"))

        # desired_running stayed true: all 20 are back at once
        await server.start(timeout=60)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            page = (await client.get("/api/conversations", params={"limit": 100})).json()
        statuses = {c["conversation_id"]: c["status"] for c in page["results"]}
        assert set(statuses) == set(ids)
        assert set(statuses.values()) <= {"STARTING", "RUNNING"}
        await wait_for(lambda: len(server.descendants()) >= CONVERSATIONS, 20, "shells back")
        children = server.descendants()  # the resumed conversations' shells
        await server.terminate(timeout=30)
        assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        await server.kill()
        await llm.stop()
