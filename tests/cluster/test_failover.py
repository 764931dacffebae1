"""An owner that dies or freezes: another node takes its conversation over within the lease
time and finishes it from the log, with nothing lost and nothing done twice. A frozen owner
that wakes after losing its lease appends nothing more (fencing) and lets the conversation go.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from bench.cluster_nodes import Cluster, Node, step_count

from tests.cluster.cluster import (
    LEASE_SECONDS,
    SCRIPTS,
    check_steps,
    finished,
    others,
    owner_of,
    wait,
)
from tests.cluster.conftest import CLUSTER

pytestmark = CLUSTER

STEPS = step_count(SCRIPTS["long"])
# lease expiry, a renewal period, the reconcile pass that notices: well inside this
TAKEOVER_SECONDS = 3 * LEASE_SECONDS + 5


async def _working_on(cluster: Cluster, steps: int) -> tuple[str, Node]:
    """A "long" conversation once it has run ``steps`` steps, and the node running it."""
    conversation_id = await cluster.create(cluster.node("A"), "long")
    await wait(lambda: len(cluster.lines(conversation_id)) >= steps, 30, "the task to work")
    return conversation_id, await owner_of(cluster, conversation_id)


def _other_owner(cluster: Cluster, conversation_id: str, old: Node) -> bool:
    return any(n is not old for n in cluster.owners(conversation_id))


@pytest.mark.timeout(150)
async def test_kill_9_of_the_owner_mid_task(cluster: Cluster) -> None:
    conversation_id, owner = await _working_on(cluster, 3)
    watcher = others(cluster, owner)[0]
    # kill just after a step's command ran: the loop is between two LLM answers
    seen = len(cluster.lines(conversation_id))
    await wait(lambda: len(cluster.lines(conversation_id)) > seen, 10, "one more step", 0.005)
    acknowledged = await cluster.events(watcher, conversation_id)
    await owner.server.kill()
    killed_at = time.monotonic()

    await wait(
        lambda: _other_owner(cluster, conversation_id, owner), TAKEOVER_SECONDS, "a takeover"
    )
    took = time.monotonic() - killed_at
    await finished(cluster, conversation_id)
    events = await check_steps(cluster, conversation_id, STEPS)
    for before in acknowledged:
        assert events[before["id"]] == before, f"event {before['id']} lost or changed"
    print(f"taken over {took:.1f} s after kill -9 (lease {LEASE_SECONDS} s)")


@pytest.mark.timeout(150)
async def test_sigstop_past_the_lease_then_sigcont(cluster: Cluster) -> None:
    conversation_id, owner = await _working_on(cluster, 3)
    owner.freeze()
    try:
        frozen_at = len(cluster.lines(conversation_id))
        # another node goes on with the task while the owner is frozen
        await wait(
            lambda: len(cluster.lines(conversation_id)) >= frozen_at + 2,
            TAKEOVER_SECONDS + 10,
            "another node to take over",
        )
        assert _other_owner(cluster, conversation_id, owner)
    finally:
        owner.thaw()
    # the old owner wakes: it must notice it lost the lease, append nothing, close its sandbox
    await wait(lambda: not owner.runs_shell_of(conversation_id), 15, "the old owner to let go")
    await finished(cluster, conversation_id)
    await asyncio.sleep(1.0)  # anything the old owner would still append comes now
    await check_steps(cluster, conversation_id, STEPS)
    assert owner not in cluster.owners(conversation_id)
    assert owner.alive, "the woken node died instead of letting the conversation go"
