"""A real ``convo serve`` with the bubblewrap sandbox, and a scripted agent that attacks.

The scripted LLM server (a subprocess) answers each LLM call with the next shell command of
the attack, then ``finish``; the convo server (a subprocess, 127.0.0.1 only) runs them in
its sandbox like any agent's commands. Tests read what came back through the API.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from bench.harness import ConvoServer, ScriptedLLMProcess

from tests.polling import wait_until

ENDED = {"finished", "error", "stopped", "awaiting_user_input"}


def bash(command: str) -> dict[str, Any]:
    return {"tool": "execute_bash", "arguments": {"command": command, "timeout": 60}}


@dataclass
class Attack:
    server: ConvoServer
    client: httpx.AsyncClient

    async def events(self, conversation_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = await self.client.get(
                f"/api/conversations/{conversation_id}/events",
                params={"start_id": len(found), "limit": 100},
            )
            assert page.status_code == 200, page.text
            body = page.json()
            found += body["events"]
            if not body.get("has_more"):
                return found

    async def run(self, message: str = "go", timeout: float = 120) -> tuple[str, list[dict]]:
        """Create a conversation and wait until its agent stopped working; its events."""
        created = await self.client.post("/api/conversations", json={"initial_user_msg": message})
        assert created.status_code == 200, created.text
        conversation_id = str(created.json()["conversation_id"])
        await self.wait_ended(conversation_id, timeout)
        return conversation_id, await self.events(conversation_id)

    async def wait_ended(self, conversation_id: str, timeout: float = 120) -> None:
        async def ended() -> bool:
            states = [
                e.get("extras", {}).get("agent_state")
                for e in await self.events(conversation_id)
                if e.get("observation") == "agent_state_changed"
            ]
            return bool(states) and states[-1] in ENDED

        await wait_until(ended, timeout, 0.2, f"conversation {conversation_id} to end")


def outputs(events: list[dict[str, Any]]) -> str:
    """Every command's output, in order."""
    return "\n".join(e.get("content", "") for e in events if e.get("observation") == "run")


@contextlib.asynccontextmanager
async def attacker_server(
    workdir: Path, commands: list[str], port: int | None = None, **settings: str
) -> AsyncIterator[Attack]:
    """A server whose agent runs ``commands`` (one per step; meant for one conversation)."""
    llm = await ScriptedLLMProcess(
        workdir / "llm",
        [bash(command) for command in commands],
        {"tool": "finish", "arguments": {"message": "done"}},
    ).start()
    server = ConvoServer(
        workdir,
        {
            "data_dir": str(workdir / "data"),
            "llm_model": "openai/scripted",
            "llm_base_url": llm.base_url,
            "llm_api_key": "attack-key-0123",
            "llm_num_retries": "0",
            "runtime": "sandbox",
            **settings,
        },
        port,
    )
    try:
        await server.start(timeout=60)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            yield Attack(server, client)
    finally:
        await server.terminate()
        await llm.stop()


def host_processes(server: ConvoServer) -> list[psutil.Process]:
    """The server's descendants that run on the host: in the server's own PID namespace
    (the launcher that becomes bwrap, slirp4netns), not inside a sandbox."""
    own = os.readlink(f"/proc/{server.pid}/ns/pid")
    found = []
    for process in server.descendants():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{process.pid}/ns/pid") == own:
                found.append(process)
    return found


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def as_json(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
