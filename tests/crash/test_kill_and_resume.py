"""kill -9 at several points of a running task, restart, and the conversation goes on.

The real server runs as a subprocess (``python -m convo serve``) against a scripted LLM
server subprocess, on SQLite and on PostgreSQL. A client polls ``/events`` all along: every
event it received must still be there after each restart, with gap-free unique ids; the
conversation must be running again straight after the restart (never stuck) and finish.
Both backends run at the same time, each with its own servers, data and database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from bench.harness import (
    ConvoServer,
    ScriptedLLMProcess,
    processes_of_sessions,
    recorded_shells,
)

from tests.crash.observer import Observer, all_events, wait_for
from tests.storage.conftest import fresh_postgres_database

FAST_STEPS = 8


def _run(command: str, delay: float = 0.0) -> dict[str, object]:
    return {"tool": "execute_bash", "arguments": {"command": command}, "delay": delay}


SCRIPT = [
    _run("echo start"),
    _run("sleep 2"),  # killed while this command runs
    _run("echo before-slow-llm"),
    _run("echo never-stored", delay=3.0),  # killed during this LLM call
    *[_run(f"echo fast-{i}") for i in range(FAST_STEPS)],  # killed between appends
]


async def _check_after_restart(server: ConvoServer, observer: Observer, shells: set[int]) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        info = (await client.get(f"/api/conversations/{observer.conversation_id}")).json()
    assert info["status"] in ("STARTING", "RUNNING"), "not resumed at start-up"
    stored = await all_events(server.base_url, observer.conversation_id)
    assert [e["id"] for e in stored] == list(range(len(stored))), "ids not gap-free and unique"
    by_id = {e["id"]: e for e in stored}
    for event_id, event in observer.received.items():
        assert by_id.get(event_id) == event, f"acknowledged event {event_id} lost or changed"
    assert processes_of_sessions(shells) == [], "the killed server's shells survived"


async def _kill_restart(server: ConvoServer, observer: Observer) -> None:
    shells = recorded_shells(server.workdir / "data")
    assert shells, "no shell was recorded"
    await server.kill()
    await server.start(timeout=60)
    await _check_after_restart(server, observer, shells)


async def _crash_scenario(workdir: Path, database_url: str | None) -> None:
    llm = await ScriptedLLMProcess(
        workdir / "llm", SCRIPT, {"tool": "finish", "arguments": {"message": "all done"}}
    ).start()
    settings = {
        "data_dir": str(workdir / "data"),
        "llm_model": "openai/scripted",
        "llm_base_url": llm.base_url,
        "llm_api_key": "bench-key-0123",
        "llm_num_retries": "0",
        "runtime": "process",
        "reconcile_interval_seconds": "1",
        "shutdown_grace_seconds": "5",
    }
    if database_url:
        settings["database_url"] = database_url
    server = ConvoServer(workdir, settings)
    observer: Observer | None = None
    try:
        await server.start(timeout=60)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            created = await client.post("/api/conversations", json={"initial_user_msg": "go"})
        observer = Observer(server.base_url, created.json()["conversation_id"])
        observer.start()

        # 1. during a shell command
        await wait_for(lambda: observer.action_running("sleep 2"), 20, "sleep 2 to run")
        await _kill_restart(server, observer)
        # 2. during an LLM call (the next answer comes after 3 s)
        await wait_for(lambda: observer.has_result_for("echo before-slow-llm"), 20, "slow call")
        await _kill_restart(server, observer)
        # 3. between appends, while events flow fast
        await wait_for(lambda: "echo fast-2" in observer.commands(), 20, "the fast steps")
        await _kill_restart(server, observer)

        await wait_for(observer.finished, 30, "the task to finish")
        stored = await all_events(server.base_url, observer.conversation_id)
        assert [e["id"] for e in stored] == list(range(len(stored)))
        sleep = next(e for e in stored if e.get("args", {}).get("command") == "sleep 2")
        result = next(e for e in stored if e.get("cause") == sleep["id"])
        assert "interrupted" in result["content"]
        assert "echo never-stored" not in observer.commands()
        assert f"echo fast-{FAST_STEPS - 1}" in observer.commands()
        # never stuck: whenever the server answered, the conversation was starting or running
        assert {status for _, status in observer.statuses} <= {"STARTING", "RUNNING"}

        shells = recorded_shells(workdir / "data")
        elapsed, _code = await server.terminate()
        assert elapsed < 5
        assert processes_of_sessions(shells) == []
        assert not list((workdir / "data" / "run").glob("*.pid"))
    finally:
        if observer is not None:
            await observer.stop()
        await server.kill()
        await llm.stop()


# Its own waits add up to about 400 s in the worst case (four server starts of up to 60 s,
# 90 s of waits for the task's progress, a terminate): the budget fits them, so a slow machine
# fails with the test's own diagnosis rather than the suite's 60 s timeout.
@pytest.mark.timeout(420)
@pytest.mark.postgres
async def test_kill_9_and_resume_on_sqlite_and_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    """Both backends at once (separate servers, data and databases), to keep the suite fast."""
    async with fresh_postgres_database(postgres_url) as url:
        outcomes = await asyncio.gather(
            _crash_scenario(tmp_path / "sqlite", None),
            _crash_scenario(tmp_path / "postgresql", url),
            return_exceptions=True,
        )
    for backend, outcome in zip(("SQLite", "PostgreSQL"), outcomes, strict=True):
        if isinstance(outcome, BaseException):
            raise AssertionError(f"on {backend}: {outcome!r}") from outcome
