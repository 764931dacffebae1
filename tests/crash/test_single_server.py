"""One server per data dir and per database: a second `convo serve` on either is refused with
one line naming the first, before it can touch the first one's commands or conversations; a
server killed with -9 leaves nothing that blocks the next one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from bench.harness import ConvoServer, ScriptedLLMProcess, processes_of_sessions, recorded_shells

from tests.crash.observer import wait_for
from tests.storage.conftest import fresh_postgres_database


def _settings(data_dir: Path, llm: ScriptedLLMProcess) -> dict[str, str]:
    return {
        "data_dir": str(data_dir),
        "llm_model": "openai/scripted",
        "llm_base_url": llm.base_url,
        "llm_api_key": "test-key-0123",
        "runtime": "process",
    }


async def _refused(server: ConvoServer) -> str:
    """Start ``server``, expecting it to exit at start-up; returns its output."""
    with pytest.raises(RuntimeError, match="exited at start-up"):
        await server.start(timeout=30)
    assert server.process is not None and server.process.returncode not in (None, 0)
    return server.log_tail(200)


async def _busy_conversation(server: ConvoServer) -> str:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        created = await client.post("/api/conversations", json={"initial_user_msg": "go"})
        conversation_id = str(created.json()["conversation_id"])

        async def sleeping() -> bool:
            events = (await client.get(f"/api/conversations/{conversation_id}/events")).json()
            return any(e.get("args", {}).get("command") == "sleep 300" for e in events["events"])

        await wait_for(sleeping, 30, "the long command to start")
    return conversation_id


@pytest.mark.timeout(150)
async def test_a_second_server_on_one_data_dir_is_refused_and_harms_nothing(
    tmp_path: Path,
) -> None:
    llm = await ScriptedLLMProcess(
        tmp_path / "llm", [{"tool": "execute_bash", "arguments": {"command": "sleep 300"}}]
    ).start()
    first = ConvoServer(tmp_path / "first", _settings(tmp_path / "data", llm))
    second = ConvoServer(tmp_path / "second", _settings(tmp_path / "data", llm))
    try:
        await first.start(timeout=30)
        await _busy_conversation(first)
        shells = recorded_shells(tmp_path / "data")
        assert processes_of_sessions(shells), "the first server's command is not running"

        output = await _refused(second)
        assert f"Another convo server (pid {first.pid} on " in output
        # the first server and its running command are untouched
        assert processes_of_sessions(shells), "the refused server killed the first one's command"
        async with httpx.AsyncClient(base_url=first.base_url, timeout=10) as client:
            assert (await client.get("/alive")).status_code == 200

        # a server killed with -9 leaves no lock behind: the next one starts
        await first.kill()
        await second.start(timeout=30)
    finally:
        await first.kill()
        await second.kill()
        await llm.stop()


@pytest.mark.timeout(120)
@pytest.mark.postgres
async def test_a_second_server_on_one_postgresql_database_is_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    llm = await ScriptedLLMProcess(tmp_path / "llm").start()
    async with fresh_postgres_database(postgres_url) as url:
        first = ConvoServer(
            tmp_path / "first", {**_settings(tmp_path / "data-1", llm), "database_url": url}
        )
        second = ConvoServer(
            tmp_path / "second", {**_settings(tmp_path / "data-2", llm), "database_url": url}
        )
        try:
            await first.start(timeout=30)
            output = await _refused(second)
            assert f"Another convo server (pid {first.pid} on " in output
            assert "is using the PostgreSQL database" in output
            await first.terminate(timeout=30)
            await second.start(timeout=30)
        finally:
            await first.kill()
            await second.kill()
            await llm.stop()
