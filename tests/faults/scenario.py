"""Ten working conversations on a real ``convo serve`` while storage fails under them.

Each conversation follows its own copy of one script (the scripted LLM server counts each
conversation's answers): ``STEPS`` commands that each append a line to ``steps.log`` in its
workspace, then ``finish``. After the fault, every conversation must finish by itself with
nothing lost and every step run exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench.harness import ConvoServer

from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import FINISH, tool_call
from tests.polling import wait_until

CONVERSATIONS = 10
STEPS = 12
STEP_DELAY = 0.3  # seconds per LLM answer: the conversations are mid-work when storage fails


def step_command(index: int) -> str:
    return f"echo step-{index} >> steps.log"


def scripted_llm() -> ScriptedLLMServer:
    steps = [
        tool_call("execute_bash", {"command": step_command(i)}, delay=STEP_DELAY)
        for i in range(STEPS)
    ]
    return ScriptedLLMServer(steps, when_exhausted=FINISH, per_conversation=True)


def server_settings(data_dir: Path, llm_url: str, **extra: str) -> dict[str, str]:
    return {
        "data_dir": str(data_dir),
        "llm_model": "openai/scripted",
        "llm_base_url": llm_url,
        "llm_api_key": "fault-test-key",
        "llm_num_retries": "0",
        "runtime": "process",
        "max_concurrent_conversations": str(CONVERSATIONS + 1),
        "reconcile_interval_seconds": "1",
        "storage_retry_seconds": "8",
        "storage_retry_max_delay_seconds": "1",
        "db_statement_timeout_seconds": "2",
        "db_connect_timeout_seconds": "2",
        "db_pool_timeout_seconds": "3",
        "shutdown_grace_seconds": "5",
        **extra,
    }


@dataclass
class Fleet:
    """The conversations of one scenario, seen over HTTP."""

    server: ConvoServer
    data_dir: Path
    ids: list[str] = field(default_factory=list)
    extra: str = ""  # a conversation outside ``ids``, for tests that stop one

    def client(self, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.server.base_url, timeout=timeout)

    async def create(self, count: int = CONVERSATIONS) -> list[str]:
        made = []
        async with self.client() as client:
            for _ in range(count):
                response = await client.post(
                    "/api/conversations", json={"initial_user_msg": "append the steps"}
                )
                response.raise_for_status()
                made.append(response.json()["conversation_id"])
        self.ids.extend(made)
        return made

    def lines(self, conversation_id: str) -> list[str]:
        path = self.data_dir / "workspaces" / conversation_id / "steps.log"
        try:
            return path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def all_working(self, at_least: int = 2) -> bool:
        """Every conversation has run ``at_least`` steps and is not done yet."""
        return all(at_least <= len(self.lines(c)) < STEPS for c in self.ids)

    async def events(self, client: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            page = await client.get(
                f"/api/conversations/{conversation_id}/events",
                params={"start_id": len(events), "limit": 100},
            )
            page.raise_for_status()
            body = page.json()
            events.extend(body["events"])
            if not body["has_more"]:
                return events

    async def all_finished(self) -> bool:
        async with self.client(timeout=10) as client:
            for conversation_id in self.ids:
                try:
                    events = await self.events(client, conversation_id)
                except httpx.HTTPError:
                    return False
                if not any(e.get("action") == "finish" for e in events):
                    return False
        return True

    async def check_nothing_lost(self) -> None:
        """Gap-free ids; each step's action once, with its observation; each step run once."""
        async with self.client() as client:
            for conversation_id in self.ids:
                events = await self.events(client, conversation_id)
                where = f"conversation {conversation_id}"
                assert [e["id"] for e in events] == list(range(len(events))), where
                for index in range(STEPS):
                    actions = [
                        e
                        for e in events
                        if e.get("action") == "run"
                        and (e.get("args") or {}).get("command") == step_command(index)
                    ]
                    assert len(actions) == 1, f"{where}: step {index} stored {len(actions)}x"
                    results = [e for e in events if e.get("cause") == actions[0]["id"]]
                    assert len(results) == 1, f"{where}: step {index} has {len(results)} results"
                    assert results[0].get("observation") == "run", results[0]
                    assert results[0]["extras"].get("metadata", {}).get("exit_code") == 0
                lines = self.lines(conversation_id)
                assert lines == [f"step-{i}" for i in range(STEPS)], f"{where}: {lines}"


async def health_status(base_url: str) -> int:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=15) as client:
            return (await client.get(f"{base_url}/health")).status_code
    return 0


async def during_fault(
    fleet: Fleet, seconds: float, check: Callable[[], Awaitable[None]] | None = None
) -> list[int]:
    """Poll /health for ``seconds`` (and run ``check`` once); the statuses seen."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    if check is not None:
        await check()
    while time.monotonic() < deadline:
        seen.append(await health_status(fleet.server.base_url))
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    return seen


async def wait_all_finished(fleet: Fleet, timeout: float) -> None:
    await wait_until(fleet.all_finished, timeout, 0.5, "every conversation to finish")


def log_lines(server: ConvoServer, text: str) -> list[str]:
    lines: list[str] = []
    for path in sorted(server.workdir.glob("server-*.log")):
        lines += [line for line in path.read_text(errors="replace").splitlines() if text in line]
    return lines
