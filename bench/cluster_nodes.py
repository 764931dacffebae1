"""Several real ``convo serve`` processes on one PostgreSQL database and one Redis: a cluster
on 127.0.0.1, for the cluster tests and benchmarks.

Every node has its own data dir and port and shares one workspaces dir, as nodes on several
machines share a volume. The scripted LLM server (a subprocess) serves named scripts: a
conversation picks one with a ``[script:NAME]`` marker in its first message and follows it by
its own count of answers, so a conversation resumed on another node goes on where it was. A
step of ``steps_script`` runs a command appending one line to ``steps.log`` in the
conversation's workspace: the file tells how many times each step really ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import ConvoServer, ScriptedLLMProcess
from convo.storage.at_rest import new_key

FINISH: dict[str, Any] = {"tool": "finish", "arguments": {"message": "Done."}}


def step_command(index: int) -> str:
    return f"echo step-{index} >> steps.log"


def step(index: int, delay: float = 0.0) -> dict[str, Any]:
    return {"tool": "execute_bash", "arguments": {"command": step_command(index)}, "delay": delay}


def steps_script(count: int, delay: float) -> dict[str, Any]:
    """``count`` steps, each an LLM answer after ``delay`` s running one command, then finish."""
    return {"steps": [*(step(i, delay) for i in range(count)), FINISH], "when_exhausted": FINISH}


def step_count(script: dict[str, Any]) -> int:
    return len(script["steps"]) - 1  # the last one is finish


@dataclass
class Node:
    name: str
    server: ConvoServer
    frozen: bool = False

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def data_dir(self) -> Path:
        return self.server.workdir / "data"

    @property
    def alive(self) -> bool:
        process = self.server.process
        return process is not None and process.returncode is None

    def client(self, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    def freeze(self) -> None:
        """SIGSTOP: the process stops dead, its connections and leases left as they are."""
        os.kill(self.server.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.alive:
            os.kill(self.server.pid, signal.SIGCONT)
        self.frozen = False

    def runs_shell_of(self, conversation_id: str) -> bool:
        """Whether this node holds the conversation's shell (its pid file, while it runs)."""
        return (self.data_dir / "run" / f"{conversation_id}.pid").exists()


@dataclass
class Cluster:
    root: Path
    database_url: str
    redis_url: str
    llm: ScriptedLLMProcess
    lease_seconds: float = 3.0
    extra: dict[str, str] = field(default_factory=dict)  # more CONVO_* settings for every node
    secrets_key: str = field(default_factory=new_key)  # one for the cluster, as it must be
    nodes: list[Node] = field(default_factory=list)

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    def settings(self, name: str) -> dict[str, str]:
        return {
            "data_dir": str(self.root / f"node-{name}" / "data"),
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "workspaces_dir": str(self.workspaces),
            "secrets_key": self.secrets_key,
            "lease_seconds": str(self.lease_seconds),
            "llm_model": "openai/scripted",
            "llm_base_url": self.llm.base_url,
            "llm_api_key": "cluster-key-0123",
            "llm_num_retries": "0",
            "runtime": "process",
            "condense_after_events": "100000",  # scripts count answers: keep them all
            "reconcile_interval_seconds": "1",
            "shutdown_grace_seconds": "4",
            **self.extra,
        }

    def add_nodes(self, names: tuple[str, ...] = ("A", "B", "C")) -> None:
        for name in names:
            workdir = self.root / f"node-{name}"
            self.nodes.append(Node(name, ConvoServer(workdir, self.settings(name))))

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    async def start(self) -> None:
        await asyncio.gather(*(n.server.start(timeout=90) for n in self.nodes))

    async def revive(self) -> None:
        """Every node running and none frozen."""
        for node in self.nodes:
            node.thaw()
        await asyncio.gather(*(n.server.start(timeout=90) for n in self.nodes if not n.alive))

    async def aclose(self) -> None:
        for node in self.nodes:
            node.thaw()
        await asyncio.gather(*(n.server.terminate(timeout=15) for n in self.nodes))

    # --- conversations, seen over HTTP ----------------------------------------------------
    async def create(self, node: Node, script: str) -> str:
        async with node.client() as client:
            response = await client.post(
                "/api/conversations", json={"initial_user_msg": f"[script:{script}] go"}
            )
        response.raise_for_status()
        return str(response.json()["conversation_id"])

    async def events(
        self, node: Node, conversation_id: str, start_id: int = 0
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with node.client() as client:
            while True:
                page = await client.get(
                    f"/api/conversations/{conversation_id}/events",
                    params={"start_id": start_id + len(events), "limit": 100},
                )
                page.raise_for_status()
                body = page.json()
                events.extend(body["events"])
                if not body["has_more"]:
                    return events

    async def status(self, node: Node, conversation_id: str) -> str | None:
        async with node.client() as client:
            info = (await client.get(f"/api/conversations/{conversation_id}")).json()
        return None if info is None else str(info["status"])

    async def running(self, node: Node) -> set[str]:
        async with node.client() as client:
            page = (await client.get("/api/conversations", params={"limit": 100})).json()
        return {c["conversation_id"] for c in page["results"] if c["status"] == "RUNNING"}

    async def finishes(self, node: Node, conversation_id: str) -> int:
        """How many ``finish`` actions it has stored (a script ends each task with one)."""
        with contextlib.suppress(httpx.HTTPError):
            events = await self.events(node, conversation_id)
            return sum(1 for e in events if e.get("action") == "finish")
        return 0

    def lines(self, conversation_id: str) -> list[str]:
        try:
            return (self.workspaces / conversation_id / "steps.log").read_text().splitlines()
        except FileNotFoundError:
            return []

    def owners(self, conversation_id: str) -> list[Node]:
        return [n for n in self.nodes if n.alive and n.runs_shell_of(conversation_id)]

    async def stop_everything(self) -> None:
        """Stop every running conversation."""
        node = next(n for n in self.nodes if n.alive and not n.frozen)
        async with node.client() as client:
            for conversation_id in await self.running(node):
                await client.post(f"/api/conversations/{conversation_id}/stop")
