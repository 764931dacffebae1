"""The cluster the tests use (``bench.cluster_nodes``), with the test's own Redis behind a
fault proxy, the scripts the tests follow and what the tests check."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from bench.cluster_nodes import FINISH, Cluster, Node, step, step_command, steps_script
from bench.redis_server import RedisServer

from tests.faults.proxy import FaultProxy
from tests.polling import wait_until

LEASE_SECONDS = 3
RUNNING_LIMIT = 6  # per user, across the cluster

SCRIPTS: dict[str, dict[str, Any]] = {
    # finishes at once; a user message then runs one step, and it finishes again
    "reply": {"steps": [FINISH, step(0), FINISH], "when_exhausted": FINISH},
    # writes the CLUSTER_SECRET its shell was given
    "secret": {
        "steps": [
            {
                "tool": "execute_bash",
                "arguments": {"command": 'echo "$CLUSTER_SECRET" >> steps.log'},
            },
            FINISH,
        ],
        "when_exhausted": FINISH,
    },
    # a task that works for a few seconds
    "short": steps_script(8, 0.3),
    # a task that outlasts a takeover
    "long": steps_script(24, 0.4),
    # a task that outlasts a rolling restart of the three nodes
    "rolling": steps_script(60, 0.4),
    # one that works for a minute, until stopped
    "endless": steps_script(150, 0.4),
}


@dataclass
class ClusterRig:
    cluster: Cluster
    redis: RedisServer
    proxy: FaultProxy

    async def heal(self) -> None:
        """Redis up and reachable, every node up and none frozen."""
        self.proxy.restore()
        if not await self.redis.ping():
            await self.redis.start()
        await self.cluster.revive()


async def wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll a sync or async predicate (HTTP errors count as false) until true, or fail."""

    async def answered() -> Any:
        try:
            result = predicate()
            return await result if asyncio.iscoroutine(result) else result
        except httpx.HTTPError:
            return False

    await wait_until(answered, timeout, interval, f"{what} ({timeout} s)")


async def owner_of(cluster: Cluster, conversation_id: str) -> Node:
    """The one node running it (holding its shell), once there is one. Not necessarily the
    node that created it: any node's takeover round may win the race for a new lease."""
    await wait(lambda: len(cluster.owners(conversation_id)) == 1, 15, "one owner")
    return cluster.owners(conversation_id)[0]


def others(cluster: Cluster, node: Node) -> list[Node]:
    return [n for n in cluster.nodes if n is not node]


async def everywhere(cluster: Cluster, conversation_id: str, status: str | None) -> None:
    """Wait until every node reports the conversation with ``status`` (None: gone)."""
    for node in cluster.nodes:

        async def seen(node: Any = node) -> bool:
            return await cluster.status(node, conversation_id) == status

        await wait(seen, 15, f"{conversation_id} to be {status} on node {node.name}")


async def finished(cluster: Cluster, conversation_id: str, times: int = 1) -> None:
    """Wait until the conversation has stored ``times`` finish actions."""
    node = next(n for n in cluster.nodes if n.alive and not n.frozen)

    async def done() -> bool:
        return await cluster.finishes(node, conversation_id) >= times

    await wait(done, 60, f"{conversation_id} to finish {times} time(s)")


def loop_starts(events: list[dict[str, Any]], after: int = -1) -> int:
    """How many loops began after event ``after``: each announces itself with ``loading``."""
    return sum(
        1
        for e in events
        if e["id"] > after
        and e.get("observation") == "agent_state_changed"
        and (e.get("extras") or {}).get("agent_state") == "loading"
    )


async def check_steps(cluster: Cluster, conversation_id: str, steps: int) -> list[dict[str, Any]]:
    """Gap-free ids; each step's action stored once with one result; each step's command run
    once, or (cut off by a stop or takeover before it started: no node can tell) not at all
    and its result saying it was interrupted. Never twice."""
    node = next(n for n in cluster.nodes if n.alive and not n.frozen)
    events = await cluster.events(node, conversation_id)
    where = f"conversation {conversation_id}"
    assert [e["id"] for e in events] == list(range(len(events))), f"{where}: ids not gap-free"
    results = {}
    for index in range(steps):
        actions = [
            e
            for e in events
            if e.get("action") == "run"
            and (e.get("args") or {}).get("command") == step_command(index)
        ]
        assert len(actions) == 1, f"{where}: step {index} stored {len(actions)} times"
        answers = [e for e in events if e.get("cause") == actions[0]["id"]]
        assert len(answers) == 1, f"{where}: step {index} has {len(answers)} results"
        results[index] = str(answers[0].get("content"))
    lines = cluster.lines(conversation_id)
    ran = [int(line.removeprefix("step-")) for line in lines]
    assert ran == sorted(set(ran)), f"{where}: a step ran twice or out of order: {lines}"
    for index in set(range(steps)) - set(ran):
        assert "interrupted" in results[index], f"{where}: step {index} never ran: {results}"
    return events
