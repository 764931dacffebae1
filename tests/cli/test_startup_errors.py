"""Start-up and configuration mistakes end in one or two lines naming what to fix, with no
traceback (unless --debug), and check-config shows no secret."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path

import httpx
import pytest
from bench.harness import ConvoServer, ScriptedLLMProcess, free_port

from tests.cli.conftest import cli_env, convo, finish, start_cli
from tests.polling import wait_until

SESSION_KEY = "session-key-b7f1e2"
LLM_KEY = "llm-key-5c9d0a"
DB_PASSWORD = "db-password-3e8f4b"


def _closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


def _assert_readable(stderr: str, *names: str) -> None:
    assert "Traceback" not in stderr, stderr
    start = stderr.rfind("convo: ")
    assert start != -1, stderr
    message = stderr[start:].strip()
    assert len(message.splitlines()) <= 2, stderr  # the message: one or two lines
    for name in names:
        assert name in message, stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONVO_RUNTIME", "chroot"),
        ("CONVO_MAX_ITERATIONS", "many"),
        ("CONVO_LOG_LEVEL", "loud"),
    ],
)
async def test_an_invalid_setting_is_named(data_dir: Path, variable: str, value: str) -> None:
    result = await convo("serve", "--port", "0", env=cli_env(data_dir, {variable: value}))
    assert result.code == 2
    _assert_readable(result.stderr, variable, repr(value), "fix or unset it")


async def test_an_unreachable_database_is_named_without_its_password(data_dir: Path) -> None:
    url = f"postgresql+asyncpg://convo:{DB_PASSWORD}@127.0.0.1:{_closed_port()}/convo"
    result = await convo("serve", "--port", "0", env=cli_env(data_dir, {"CONVO_DATABASE_URL": url}))
    assert result.code == 2
    _assert_readable(result.stderr, "CONVO_DATABASE_URL", "convo:***@127.0.0.1")
    assert DB_PASSWORD not in result.stderr + result.stdout


async def test_a_port_in_use_is_named(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await convo("serve", "--port", str(port), env=cli_env(data_dir))
    assert result.code == 2
    _assert_readable(result.stderr, f"port {port}", "--port")


async def test_a_data_dir_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = await convo("serve", "--port", "0", env=cli_env(blocker / "data"))
    assert result.code == 2
    _assert_readable(result.stderr, "CONVO_DATA_DIR", str(blocker / "data"))


async def test_a_second_server_on_the_data_dir_is_named(
    demo_server: ConvoServer, data_dir: Path
) -> None:
    result = await convo("serve", "--port", "0", env=cli_env(data_dir))
    assert result.code == 2
    _assert_readable(result.stderr, "Another convo server", str(data_dir))


async def test_debug_shows_the_traceback(data_dir: Path) -> None:
    env = cli_env(data_dir, {"CONVO_RUNTIME": "chroot"})
    flag = await convo("--debug", "serve", "--port", "0", env=env)
    variable = await convo("serve", "--port", "0", env={**env, "CONVO_LOG_LEVEL": "debug"})
    for result in (flag, variable):
        assert result.code == 2
        assert "Traceback" in result.stderr and "CONVO_RUNTIME" in result.stderr


async def test_check_config_hides_every_secret(data_dir: Path) -> None:
    env = cli_env(
        data_dir,
        {
            "CONVO_SESSION_API_KEY": SESSION_KEY,
            "CONVO_LLM_API_KEY": LLM_KEY,
            "CONVO_LLM_MODEL": "openai/gpt-4o-mini",
            "CONVO_DATABASE_URL": f"postgresql+asyncpg://convo:{DB_PASSWORD}@127.0.0.1:"
            f"{_closed_port()}/convo",
            "CONVO_RUNTIME": "process",
        },
    )
    text = await convo("check-config", env=env)
    as_json = await convo("check-config", "--json", env=env)
    for result in (text, as_json):
        assert result.code == 0, result.stderr
        for secret in (SESSION_KEY, LLM_KEY, DB_PASSWORD):
            assert secret not in result.stdout + result.stderr
    assert "LLM:      openai/gpt-4o-mini" in text.stdout
    assert "runtime:  process" in text.stdout
    shown = json.loads(as_json.stdout)
    assert shown["settings"]["session_api_key"] == "<hidden>"
    assert shown["settings"]["llm_api_key"] == "<hidden>"
    assert shown["settings"]["database_url"].startswith("postgresql+asyncpg://convo:***@")


async def test_first_ctrl_c_of_serve_says_how_long_it_waits(data_dir: Path) -> None:
    port = free_port()
    env = cli_env(data_dir, {"CONVO_SHUTDOWN_GRACE_SECONDS": "7"})
    process = await start_cli(["serve", "--port", str(port)], env)
    assert process.stderr is not None
    seen = b""
    while b"listening on" not in seen:
        line = await process.stderr.readline()
        assert line, f"convo serve ended early: {seen!r}"
        seen += line
    assert b"INFO alembic" not in seen and b"Uvicorn running" not in seen  # no library noise

    process.send_signal(signal.SIGINT)
    result = await finish(process, timeout=60)

    assert "stopping: waiting up to 7 s" in result.stderr
    assert "Ctrl-C again" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().endswith("convo: stopped")
    assert result.code == 130  # ended by Ctrl-C, as shells expect


async def test_second_ctrl_c_of_serve_stops_at_once(tmp_path: Path, data_dir: Path) -> None:
    llm = await ScriptedLLMProcess(
        tmp_path / "llm",
        steps=[{"tool": "execute_bash", "arguments": {"command": "sleep 120"}}],
    ).start()
    port = free_port()
    env = cli_env(
        data_dir,
        {
            "CONVO_SHUTDOWN_GRACE_SECONDS": "60",  # the running sleep would hold it for 30 s
            "CONVO_LLM_MODEL": "openai/scripted",
            "CONVO_LLM_BASE_URL": llm.base_url,
            "CONVO_LLM_API_KEY": "scripted-key",
        },
    )
    process = await start_cli(["serve", "--port", str(port)], env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await wait_until(lambda: _alive(client), timeout=60, what="convo serve")
            created = await client.post("/api/conversations", json={"initial_user_msg": "nap"})
            conversation_id = created.json()["conversation_id"]

            async def sleeping() -> bool:
                page = await client.get(f"/api/conversations/{conversation_id}/events")
                return any(e.get("action") == "run" for e in page.json().get("events", []))

            await wait_until(sleeping, timeout=60, what="the agent's sleep")
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        first = await asyncio.wait_for(process.stderr.readline(), 30)
        while b"stopping: waiting up to 60 s" not in first:
            first = await asyncio.wait_for(process.stderr.readline(), 30)
        process.send_signal(signal.SIGINT)
        result = await finish(process, timeout=20)  # well before the 30 s the sleep could take
    finally:
        await llm.stop()
    assert result.code == 130
    assert "stopping now without waiting" in result.stderr
    assert "Traceback" not in result.stderr


async def _alive(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/alive")).status_code == 200
    except httpx.HTTPError:
        return False
