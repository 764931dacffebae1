"""A rolling restart of all three nodes (SIGTERM, start again, next node) while conversations
work: every conversation finishes, with gap-free ids and every step run exactly once."""

from __future__ import annotations

import pytest
from bench.cluster_nodes import Cluster, step_count

from tests.cluster.cluster import SCRIPTS, check_steps, wait
from tests.cluster.conftest import CLUSTER

pytestmark = CLUSTER

CONVERSATIONS = 5
STEPS = step_count(SCRIPTS["rolling"])


@pytest.mark.timeout(170)
async def test_rolling_restart_under_load_loses_nothing(cluster: Cluster) -> None:
    ids = []
    for index in range(CONVERSATIONS):
        ids.append(await cluster.create(cluster.nodes[index % 3], "rolling"))
    await wait(
        lambda: all(len(cluster.lines(c)) >= 2 for c in ids), 30, "every conversation to work"
    )
    for node in cluster.nodes:
        working = [c for c in ids if len(cluster.lines(c)) < STEPS]
        assert working, f"no conversation was working any more when {node.name} restarted"
        await node.server.terminate(timeout=30)
        await node.server.start(timeout=90)
    for conversation_id in ids:
        await wait(
            lambda c=conversation_id: cluster.finishes(cluster.nodes[0], c), 90, "it to finish"
        )
    for conversation_id in ids:
        await check_steps(cluster, conversation_id, STEPS)
