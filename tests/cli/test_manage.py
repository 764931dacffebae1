"""``convo ls``, ``tail``, ``stop`` and ``rm`` against a running ``convo serve``, found through
its data dir's server.json or named with --server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from bench.harness import ConvoServer, ScriptedLLMProcess

from tests.cli.conftest import cli_env, convo, finish, scripted_server, start_cli


async def _run_demo(server: ConvoServer, data_dir: Path, task: str) -> str:
    result = await convo("run", "--demo", "--json", task, env=cli_env(data_dir))
    assert result.code == 0, result.stderr
    assert f"on {server.base_url}" in result.stderr  # the running server, found by its data dir
    return result.stderr.split("conversation ", 1)[1].split()[0]


async def test_ls_tail_stop_rm(demo_server: ConvoServer, data_dir: Path) -> None:
    env = cli_env(data_dir)
    first = await _run_demo(demo_server, data_dir, "first task")
    second = await _run_demo(demo_server, data_dir, "second task")

    listing = await convo("ls", env=env)
    assert listing.code == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:] if line.strip()}
    assert set(rows) == {first, second}
    assert "RUNNING" in rows[first] and "finished" in rows[first] and "first task" in rows[first]

    # tail replays the whole conversation and ends as the agent did
    tail = await convo("tail", first, "--server", demo_server.base_url, env=env)
    assert tail.code == 0, tail.stderr
    assert "> first task" in tail.stdout and "[demo model] Done" in tail.stdout
    # resumable: only what came after an event id
    replay = await convo("tail", first, "--json", env=env)
    events = [json.loads(line) for line in replay.stdout.splitlines()]
    finish_id = next(e["id"] for e in events if e.get("action") == "finish")
    resumed = await convo("tail", first, "--after", str(finish_id), "--json", env=env)
    assert resumed.code == 0, resumed.stderr
    ids = [json.loads(line)["id"] for line in resumed.stdout.splitlines()]
    assert ids and min(ids) == finish_id + 1

    stopped = await convo("stop", first, env=env)
    assert stopped.code == 0, stopped.stderr
    async with httpx.AsyncClient(base_url=demo_server.base_url, timeout=30) as client:
        assert (await client.get(f"/api/conversations/{first}")).json()["status"] == "STOPPED"
        tail_stopped = await convo("tail", first, env=env)
        assert tail_stopped.code == 3, tail_stopped  # the agent's last state: stopped

        removed = await convo("rm", second, env=env)
        assert removed.code == 0, removed.stderr
        assert (await client.get(f"/api/conversations/{second}")).json() is None

    after = await convo("ls", "--json", env=env)
    assert [c["conversation_id"] for c in json.loads(after.stdout)] == [first]
    missing = await convo("tail", second, env=env)
    assert missing.code == 1 and f"no conversation {second}" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_a_server_that_does_not_answer_is_named(data_dir: Path) -> None:
    result = await convo("ls", "--server", "http://127.0.0.1:9", env=cli_env(data_dir))
    assert result.code == 5
    assert "cannot reach the convo server at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


async def test_tail_follows_a_running_conversation_live(tmp_path: Path, data_dir: Path) -> None:
    llm = await ScriptedLLMProcess(
        tmp_path / "llm",
        steps=[
            {"tool": "execute_bash", "arguments": {"command": "sleep 3 && echo woke up"}},
            {"tool": "finish", "arguments": {"message": "all done"}},
        ],
    ).start()
    server = scripted_server(tmp_path, data_dir, llm.base_url)
    env = cli_env(data_dir)
    try:
        await server.start()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            created = await client.post("/api/conversations", json={"initial_user_msg": "nap"})
            conversation_id = created.json()["conversation_id"]
            tail = await start_cli(["tail", conversation_id], env)
            result = await finish(tail, timeout=60)
            info = (await client.get(f"/api/conversations/{conversation_id}")).json()
    finally:
        await server.terminate()
        await llm.stop()

    assert result.code == 0, result
    out = result.stdout
    assert out.index("$ sleep 3 && echo woke up") < out.index("woke up\n") < out.index("all done")
    assert info["status"] == "RUNNING"  # tail only watched: the conversation is left as it was
