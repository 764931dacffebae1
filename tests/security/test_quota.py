"""Disk: a workspace's quota stops a filling agent; a nearly full disk refuses new work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from convo.runtime.quota import disk_usage
from tests.api.conftest import make_settings, serve
from tests.security.attacker import attacker_server, outputs

QUOTA_MB = 20
FILES = 400
# 400 MB in 1 MB files, a little at a time: only the workspace watch can stop this (no
# single file reaches the per-file limit), and it must, long before the last one
FILL = (
    f"for i in $(seq 1 {FILES}); do head -c 1M /dev/zero > fill$i || break; sleep 0.02; done; "
    "echo FILLED-EVERYTHING"
)


async def _stopped_at_the_quota(
    tmp_path: Path, attack_command: str, finished: str
) -> tuple[str, list[dict[str, Any]]]:
    """Run ``attack_command`` then one more command as the sandboxed agent under the
    quota; asserts the attack did not get to print ``finished``, nothing ran after it, and
    the conversation's error names the quota. Returns the conversation id and its events."""
    assert os.geteuid() == 0, "run as root, as the sandbox is meant to"
    async with attacker_server(
        tmp_path, [attack_command, "echo still-running"], workspace_disk_mb=str(QUOTA_MB)
    ) as attack:
        cid, events = await attack.run(timeout=120)
    text = outputs(events)
    assert finished not in text and "still-running" not in text, text[-1000:]
    errors = [e["content"] for e in events if e.get("observation") == "error"]
    assert any("quota" in error and f"{QUOTA_MB} MB" in error for error in errors), errors
    return cid, events


@pytest.mark.timeout(180)
async def test_a_disk_filling_command_is_stopped_at_the_quota(tmp_path: Path) -> None:
    cid, events = await _stopped_at_the_quota(tmp_path, FILL, "FILLED-EVERYTHING")
    states = [
        e["extras"]["agent_state"] for e in events if e.get("observation") == "agent_state_changed"
    ]
    assert states[-1] == "error", states
    workspace = tmp_path / "data" / "workspaces" / cid
    written = len(list(workspace.glob("fill*")))
    assert QUOTA_MB <= written < FILES, written
    print(f"stopped after {written} MB of {FILES} MB (quota {QUOTA_MB} MB)")
    assert disk_usage(workspace) < FILES * 2**20


async def test_new_work_is_refused_while_the_disk_is_nearly_full(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, min_free_disk_mb=2**40)  # more than any disk has
    async with serve(settings) as server:
        created = await server.client.post("/api/conversations", json={})
        assert created.status_code == 507, created.text
        assert "disk is nearly full" in created.json()["detail"]
    roomy = make_settings(tmp_path, min_free_disk_mb=1)
    async with serve(roomy) as server:
        created = await server.client.post("/api/conversations", json={})
        assert created.status_code == 200, created.text
        cid = created.json()["conversation_id"]
        stopped = await server.client.post(f"/api/conversations/{cid}/stop")
        assert stopped.status_code == 200, stopped.text  # else the next server resumes it
    async with serve(settings) as server:
        started = await server.client.post(f"/api/conversations/{cid}/start", json={})
        assert started.status_code == 507, started.text


# Files deleted while a process keeps them open (or mapped) use the disk and are in no
# directory: each stays under the per-file limit, together they are far over the quota
HOLD = (
    "for i in 1 2 3 4 5 6 7 8; do ( exec 3>held$i; rm held$i; head -c 15M /dev/zero >&3; "
    "exec sleep 600 ) & done; sleep 10; echo HELD-EVERYTHING"
)


@pytest.mark.timeout(180)
async def test_deleted_files_held_open_count_against_the_quota(tmp_path: Path) -> None:
    await _stopped_at_the_quota(tmp_path, HOLD, "HELD-EVERYTHING")
