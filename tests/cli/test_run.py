"""``convo run``: the demo with no key, JSON lines for scripts, Ctrl-C as a clean stop."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
from bench.harness import ConvoServer, ScriptedLLMProcess

from tests.cli.conftest import cli_env, convo, finish, scripted_server, start_cli

TASK = "count the words of this little task"


async def test_demo_run_without_a_key_follows_the_agent_to_the_end(
    tmp_path: Path, data_dir: Path
) -> None:
    env = {k: v for k, v in cli_env(data_dir).items() if "API_KEY" not in k}
    result = await convo("run", "--demo", TASK, env=env, cwd=tmp_path)

    assert result.code == 0, result.stderr
    out = result.stdout
    # the agent's steps, in order: explore, write a file (as a diff), run it, finish
    steps = [
        "[demo model] Hello!",
        "$ pwd && ls -la",
        "edit create",
        "+TASK = 'count the words of this little task'",
        "$ python3 convo_demo.py",
        "The task has 7 words.",
        "[demo model] Done",
        "finished · 4 steps · $0.0000",
    ]
    positions = [out.find(step) for step in steps]
    assert -1 not in positions, out
    assert positions == sorted(positions), out
    assert "Traceback" not in result.stderr
    # the embedded server is gone and has unregistered itself
    assert not (data_dir / "server.json").exists()
    # the file is really in the conversation's workspace
    written = list(data_dir.glob("workspaces/*/convo_demo.py"))
    assert len(written) == 1


async def test_run_without_a_model_says_how_to_get_one(data_dir: Path) -> None:
    result = await convo("run", "hello", env=cli_env(data_dir))
    assert result.code == 2
    assert "CONVO_LLM_MODEL" in result.stderr and "convo run --demo" in result.stderr
    assert "Traceback" not in result.stderr


async def test_json_lines_are_the_conversation_s_events(
    demo_server: ConvoServer, data_dir: Path
) -> None:
    result = await convo(
        "run", "--json", "--server", demo_server.base_url, TASK, env=cli_env(data_dir)
    )

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    stored = [e for e in events if not e.get("status_update")]  # status updates: no event id
    assert [e["id"] for e in stored] == list(range(len(stored)))
    assert stored[0]["action"] == "message" and stored[0]["args"]["content"] == TASK
    assert any(e.get("action") == "finish" for e in stored)
    states = [
        e["extras"]["agent_state"] for e in stored if e.get("observation") == "agent_state_changed"
    ]
    assert states[-1] == "finished"
    # people's notes go to stderr, never between the JSON lines
    assert "finished: 4 steps" in result.stderr


async def _wait_for_line(process: asyncio.subprocess.Process, text: bytes) -> bytes:
    assert process.stdout is not None
    seen = b""
    async with asyncio.timeout(60):
        while text not in seen:
            line = await process.stdout.readline()
            assert line, f"convo run ended early: {seen!r}"
            seen += line
    return seen


def _sleeping_llm(tmp_path: Path) -> ScriptedLLMProcess:
    return ScriptedLLMProcess(
        tmp_path / "llm",
        steps=[{"tool": "execute_bash", "arguments": {"command": "sleep 120"}}],
    )


async def test_ctrl_c_stops_the_conversation_of_its_own_server(
    tmp_path: Path, data_dir: Path
) -> None:
    llm = await _sleeping_llm(tmp_path).start()
    env = cli_env(
        data_dir,
        {
            "CONVO_LLM_MODEL": "openai/scripted",
            "CONVO_LLM_BASE_URL": llm.base_url,
            "CONVO_LLM_API_KEY": "scripted-key",
        },
    )
    try:
        process = await start_cli(["run", "sleep a long time"], env)
        seen = await _wait_for_line(process, b"$ sleep 120")
        conversation_id = seen.split(b"conversation ", 1)[1].split()[0].decode()

        process.send_signal(signal.SIGINT)
        result = await finish(process, timeout=60)
    finally:
        await llm.stop()

    assert result.code == 3, (seen, result)
    assert "Traceback" not in result.stderr
    listing = await convo("ls", "--json", env=env)
    (info,) = json.loads(listing.stdout)
    assert info["conversation_id"] == conversation_id
    assert info["status"] == "STOPPED"


async def test_ctrl_c_stops_the_conversation(tmp_path: Path, data_dir: Path) -> None:
    llm = await _sleeping_llm(tmp_path).start()
    server = scripted_server(tmp_path, data_dir, llm.base_url)
    try:
        await server.start()
        process = await start_cli(
            ["run", "--server", server.base_url, "sleep a long time"], cli_env(data_dir)
        )
        seen = await _wait_for_line(process, b"$ sleep 120")
        conversation_id = seen.split(b"conversation ", 1)[1].split()[0].decode()

        process.send_signal(signal.SIGINT)
        result = await finish(process, timeout=60)

        assert result.code == 3, (seen, result)
        assert "stopping conversation" in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            info = (await client.get(f"/api/conversations/{conversation_id}")).json()
            assert info["status"] == "STOPPED"
    finally:
        await server.terminate()
        await llm.stop()


async def test_model_option_picks_the_model_of_the_command_s_own_server(
    tmp_path: Path, data_dir: Path
) -> None:
    llm = await ScriptedLLMProcess(
        tmp_path / "llm", steps=[{"tool": "finish", "arguments": {"message": "scripted reply"}}]
    ).start()
    env = cli_env(
        data_dir, {"CONVO_LLM_BASE_URL": llm.base_url, "CONVO_LLM_API_KEY": "scripted-key"}
    )
    try:
        result = await convo("run", "--model", "openai/scripted", "say hi", env=env)
        without = await convo("run", "say hi", env=env)
    finally:
        await llm.stop()
    assert result.code == 0, result
    assert "scripted reply" in result.stdout
    assert without.code == 2 and "No LLM is configured" in without.stderr  # no CONVO_LLM_MODEL
