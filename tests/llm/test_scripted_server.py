"""The scripted OpenAI-compatible server, spoken to with plain HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import (
    FINISH,
    Script,
    http_error,
    load_scripts,
    text,
    tool_call,
)

BODY: dict[str, Any] = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}


async def _post(
    base_url: str,
    body: dict[str, Any] = BODY,
    *,
    key: str | None = None,
    path: str = "/chat/completions",
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(base_url + path, json=body, headers=headers)


async def test_steps_are_answered_in_order_and_requests_recorded() -> None:
    script = [tool_call("think", {"thought": "hmm"}), text("done")]
    async with ScriptedLLMServer(script) as server:
        first = (await _post(server.base_url)).json()
        second = (await _post(server.base_url, {**BODY, "messages": []})).json()
        root = server.base_url.removesuffix("/v1")
        third = await _post(root, path="/chat/completions")  # without /v1 too
    call = first["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "think"
    assert json.loads(call["function"]["arguments"]) == {"thought": "hmm"}
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert second["choices"][0]["message"] == {"role": "assistant", "content": "done"}
    assert third.status_code == 500 and "exhausted" in third.json()["error"]["message"]
    assert server.requests[0] == BODY and server.requests[1]["messages"] == []


async def test_bearer_key_is_required_when_set() -> None:
    async with ScriptedLLMServer([text("ok")], api_key="right") as server:
        missing = await _post(server.base_url)
        wrong = await _post(server.base_url, key="wrong")
        right = await _post(server.base_url, key="right")
    assert missing.status_code == wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200
    assert len(server.requests) == 1  # refused requests are not recorded


async def test_errors_streaming_and_unknown_paths() -> None:
    async with ScriptedLLMServer([http_error(429, "slow down"), text("ok")]) as server:
        limited = await _post(server.base_url)
        streamed = await _post(server.base_url, {**BODY, "stream": True})
        unknown = await _post(server.base_url, path="/embeddings")
        ok = await _post(server.base_url)
    assert limited.status_code == 429 and limited.json()["error"]["message"] == "slow down"
    assert streamed.status_code == 400 and "stream" in streamed.json()["error"]["message"]
    assert unknown.status_code == 404
    assert ok.json()["choices"][0]["message"]["content"] == "ok"


async def test_when_exhausted_loops_a_step() -> None:
    async with ScriptedLLMServer([], when_exhausted=FINISH) as server:
        bodies = [(await _post(server.base_url)).json() for _ in range(3)]
    names = [b["choices"][0]["message"]["tool_calls"][0]["function"]["name"] for b in bodies]
    assert names == ["finish"] * 3
    assert len({b["id"] for b in bodies}) == 3


async def test_delay_and_prompt_shutdown_during_a_delay() -> None:
    async with ScriptedLLMServer([text("late", delay=0.2), text("stuck", delay=30)]) as server:
        started = time.monotonic()
        assert (await _post(server.base_url)).status_code == 200
        assert time.monotonic() - started >= 0.2
        pending = asyncio.create_task(_post(server.base_url))
        while len(server.requests) < 2:
            await asyncio.sleep(0.01)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3  # the 30 s delay did not hold shutdown
    with pytest.raises(httpx.HTTPError):
        response = await pending
        response.raise_for_status()


async def test_runs_as_a_subprocess(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "steps": [{"text": "from a file"}],
                "when_exhausted": {"tool": "finish", "arguments": {"message": "bye"}},
            }
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "convo.llm.scripted_server",
        "--port",
        "0",
        "--script",
        str(script),
        "--api-key",
        "k",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        base_url = line.strip().removeprefix("listening on ")
        first = (await _post(base_url, key="k")).json()
        second = (await _post(base_url, key="k")).json()
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
    assert first["choices"][0]["message"]["content"] == "from a file"
    assert second["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "finish"


def _conversation(marker: str, answers: int) -> dict[str, Any]:
    """A request of a conversation whose first message holds ``marker``, after ``answers``."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"go {marker}"}]
    for i in range(answers):
        messages += [{"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": "on"}]
    return {"model": "scripted", "messages": messages}


def _content(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


async def test_each_conversation_follows_its_own_script() -> None:
    scripts = {
        "a": Script([text("a0"), text("a1")], when_exhausted=text("a-done")),
        "b": Script([text("b0")]),
    }
    async with ScriptedLLMServer([text("d0"), text("d1")], scripts=scripts) as server:
        # interleaved: each conversation's position comes from its own messages
        a0 = await _post(server.base_url, _conversation("[script:a]", 0))
        b0 = await _post(server.base_url, _conversation("[script:b]", 0))
        a1 = await _post(server.base_url, _conversation("[script:a]", 1))
        a1_again = await _post(server.base_url, _conversation("[script:a]", 1))  # a retry
        a2 = await _post(server.base_url, _conversation("[script:a]", 2))
        b1 = await _post(server.base_url, _conversation("[script:b]", 1))
        plain = await _post(server.base_url)  # no marker: the shared cursor, from its start
    assert [_content(r) for r in (a0, b0, a1, a1_again, a2)] == ["a0", "b0", "a1", "a1", "a-done"]
    assert b1.status_code == 500  # b's script is exhausted, without a when_exhausted step
    assert _content(plain) == "d0"


async def test_per_conversation_counting_without_markers() -> None:
    async with ScriptedLLMServer([text("s0"), text("s1")], per_conversation=True) as server:
        first = await _post(server.base_url, _conversation("", 0))
        other_first = await _post(server.base_url, _conversation("", 0))
        second = await _post(server.base_url, _conversation("", 1))
    assert [_content(r) for r in (first, other_first, second)] == ["s0", "s0", "s1"]


async def test_the_request_log_is_bounded() -> None:
    async with ScriptedLLMServer([], when_exhausted=text("ok"), max_requests=3) as server:
        for i in range(5):
            await _post(server.base_url, {**BODY, "n": i})
    assert [r["n"] for r in server.requests] == [2, 3, 4]
    assert server.app.served == 5


async def test_named_scripts_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            {
                "steps": [{"text": "default"}],
                "per_conversation": True,
                "scripts": {"x": {"steps": [{"text": "x0"}], "when_exhausted": {"text": "x-end"}}},
            }
        )
    )
    scripts, per_conversation = load_scripts(path)
    assert per_conversation and scripts["x"].step(0) == text("x0")
    assert scripts["x"].step(5) == text("x-end")
