"""Three real ``convo serve`` processes on one PostgreSQL database and one Redis: a cluster.

The Redis server is the test's own (``RedisServer``), reached through a ``FaultProxy`` the
test controls. Every node has its own data dir and shares one workspaces dir, as nodes on
several machines would share a volume. The scripted LLM server runs in the test's event loop;
a conversation picks its script with a ``[script:NAME]`` marker in its first message and
follows it by its own count of answers, so a conversation resumed on another node continues
where it was. A script's step is a command appending one line to ``steps.log`` in the
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
from bench.harness import ConvoServer
from bench.redis_server import RedisServer

from convo.llm.scripted_server import FINISH, Script, ScriptedLLMServer, tool_call
from tests.faults.proxy import FaultProxy

LEASE_SECONDS = 3
RUNNING_LIMIT = 6  # per user, across the cluster
NODE_NAMES = ("A", "B", "C")


def step_command(index: int) -> str:
    return f"echo step-{index} >> steps.log"


def steps_script(count: int, delay: float) -> Script:
    """``count`` steps, each an LLM answer after ``delay`` s running one command, then finish."""
    steps = [
        tool_call("execute_bash", {"command": step_command(i)}, delay=delay) for i in range(count)
    ]
    return Script([*steps, FINISH], FINISH)


SCRIPTS: dict[str, Script] = {
    # finishes at once; a user message then runs one step, and it finishes again
    "reply": Script(
        [FINISH, tool_call("execute_bash", {"command": step_command(0)}), FINISH], FINISH
    ),
    # a task that works for a few seconds
    "short": steps_script(8, 0.3),
    # a task that outlasts a takeover
    "long": steps_script(24, 0.4),
    # a task that outlasts a rolling restart of the three nodes
    "rolling": steps_script(60, 0.4),
    # one that keeps working for a minute (until stopped)
    "endless": steps_script(150, 0.4),
}


def scripted_llm() -> ScriptedLLMServer:
    return ScriptedLLMServer([], when_exhausted=FINISH, scripts=SCRIPTS, per_conversation=True)


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
        os.kill(self.server.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.alive:
            os.kill(self.server.pid, signal.SIGCONT)
        self.frozen = False

    def runs_shell_of(self, conversation_id: str) -> bool:
        """Whether this node holds the conversation's shell (its pid file while it runs)."""
        return (self.data_dir / "run" / f"{conversation_id}.pid").exists()

    def log(self) -> str:
        texts = []
        for path in sorted(self.server.workdir.glob("server-*.log")):
            texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)


@dataclass
class Cluster:
    root: Path
    database_url: str
    redis: RedisServer
    proxy: FaultProxy
    llm: ScriptedLLMServer
    nodes: list[Node] = field(default_factory=list)

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.proxy.port}/0"

    def settings(self, name: str, **extra: str) -> dict[str, str]:
        return {
            "data_dir": str(self.root / f"node-{name}" / "data"),
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "workspaces_dir": str(self.workspaces),
            "lease_seconds": str(LEASE_SECONDS),
            "llm_model": "openai/scripted",
            "llm_base_url": self.llm.base_url,
            "llm_api_key": "cluster-test-key",
            "llm_num_retries": "0",
            "runtime": "process",
            "max_concurrent_conversations": str(RUNNING_LIMIT),
            "condense_after_events": "100000",
            "reconcile_interval_seconds": "1",
            "stop_timeout_seconds": "10",
            "shutdown_grace_seconds": "4",
            "db_statement_timeout_seconds": "5",
            "db_connect_timeout_seconds": "3",
            **extra,
        }

    def add_nodes(self) -> None:
        for name in NODE_NAMES:
            workdir = self.root / f"node-{name}"
            self.nodes.append(Node(name, ConvoServer(workdir, self.settings(name))))

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    async def start(self) -> None:
        await asyncio.gather(*(n.server.start(timeout=90) for n in self.nodes))

    async def heal(self) -> None:
        """Every node running and not frozen, Redis up and reachable: ready for the next test."""
        self.proxy.restore()
        if not await self.redis.ping():
            await self.redis.start()
        for node in self.nodes:
            node.thaw()
        await asyncio.gather(*(n.server.start(timeout=90) for n in self.nodes if not n.alive))

    async def aclose(self) -> None:
        for node in self.nodes:
            node.thaw()
        await asyncio.gather(*(n.server.terminate(timeout=15) for n in self.nodes))

    # --- conversations, seen over HTTP --------------------------------------------------
    async def create(self, node: Node, script: str) -> str:
        async with node.client() as client:
            response = await client.post(
                "/api/conversations", json={"initial_user_msg": f"[script:{script}] go"}
            )
        response.raise_for_status()
        return str(response.json()["conversation_id"])

    async def events(self, node: Node, conversation_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with node.client() as client:
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

    async def status(self, node: Node, conversation_id: str) -> str | None:
        async with node.client() as client:
            info = (await client.get(f"/api/conversations/{conversation_id}")).json()
        return None if info is None else str(info["status"])

    async def has_status(self, node: Node, conversation_id: str, status: str | None) -> bool:
        return await self.status(node, conversation_id) == status

    async def everywhere(self, conversation_id: str, status: str | None, timeout: float) -> None:
        """Wait until every node reports the conversation with ``status`` (None: gone)."""
        for node in self.nodes:
            await wait(
                lambda node=node: self.has_status(node, conversation_id, status),
                timeout,
                f"{conversation_id} to be {status} on node {node.name}",
            )

    async def running(self, node: Node) -> set[str]:
        async with node.client() as client:
            page = (await client.get("/api/conversations", params={"limit": 100})).json()
        return {c["conversation_id"] for c in page["results"] if c["status"] == "RUNNING"}

    async def finishes(self, node: Node, conversation_id: str) -> int:
        """How many ``finish`` actions it has stored (each script ends its task with one)."""
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

    async def check_steps(
        self, node: Node, conversation_id: str, steps: int
    ) -> list[dict[str, Any]]:
        """Gap-free ids; each step's action stored once with one result; each step run once."""
        events = await self.events(node, conversation_id)
        where = f"conversation {conversation_id}"
        assert [e["id"] for e in events] == list(range(len(events))), f"{where}: ids not gap-free"
        for index in range(steps):
            actions = [
                e
                for e in events
                if e.get("action") == "run"
                and (e.get("args") or {}).get("command") == step_command(index)
            ]
            assert len(actions) == 1, f"{where}: step {index} stored {len(actions)} times"
            results = [e for e in events if e.get("cause") == actions[0]["id"]]
            assert len(results) == 1, f"{where}: step {index} has {len(results)} results"
        lines = self.lines(conversation_id)
        assert lines == [f"step-{i}" for i in range(steps)], f"{where}: steps ran as {lines}"
        return events

    async def stop_everything(self) -> None:
        """Stop every running conversation, so that the next test starts from none."""
        node = next(n for n in self.nodes if n.alive and not n.frozen)
        for conversation_id in await self.running(node):
            async with node.client() as client:
                await client.post(f"/api/conversations/{conversation_id}/stop")


async def wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll a sync or async predicate (HTTP errors count as false) until true, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
        except httpx.HTTPError:
            result = False
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def loop_starts(events: list[dict[str, Any]], after: int = -1) -> int:
    """How many loops began after event ``after``: each announces itself with ``loading``."""
    return sum(
        1
        for e in events
        if e["id"] > after
        and e.get("observation") == "agent_state_changed"
        and (e.get("extras") or {}).get("agent_state") == "loading"
    )
