"""The data dir's disk fills up under ten working conversations (SQLite on a small tmpfs).

The test mounts a 64 MB tmpfs as the data dir (it needs root and mount permission, else it
is skipped, saying why), lets ten conversations work, then fills the disk with a file. While
the disk is full: each conversation has an error event saying so, ``/health`` answers 503,
a stop answers (never 500). Then the file is deleted: every conversation finishes by
itself, nothing lost, every step run once. A restart on a still-full disk resumes nothing
and says why; once space is freed, the conversations resume and finish.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bench.harness import ConvoServer

from tests.faults.scenario import (
    CONVERSATIONS,
    Fleet,
    during_fault,
    health_status,
    log_lines,
    scripted_llm,
    server_settings,
    wait_all_finished,
)
from tests.polling import wait_until

DISK_FULL = "STATUS$ERROR_DISK_FULL"
FULL_SECONDS = 20


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mb: int = 64) -> Iterator[Path]:
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        reason = "mounting a tmpfs needs root"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"mount is not permitted here: {mounted.stderr.strip()}"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the disk has no room left; returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 20, 1 << 12):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return filler


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """Ten working conversations on a data dir of 64 MB; ``fleet.stoppable`` one more."""
    with small_tmpfs(tmp_path / "data") as data_dir:
        async with scripted_llm() as llm:
            settings = server_settings(data_dir, llm.base_url, min_free_disk_mb="16")
            server = ConvoServer(tmp_path, settings)
            try:
                await server.start()
                fleet = Fleet(server, data_dir)
                await fleet.create()
                stoppable = Fleet(server, data_dir)
                await stoppable.create(1)
                fleet.extra = stoppable.ids[0]
                await wait_until(fleet.all_working, 60, 0.1, "every conversation to be working")
                yield fleet
            finally:
                with contextlib.suppress(FileNotFoundError):
                    (data_dir / "filler").unlink()
                await server.terminate()


async def _told_disk_full(fleet: Fleet, conversation_id: str) -> bool:
    async with fleet.client(timeout=10) as client:
        events = await fleet.events(client, conversation_id)
    return any((e.get("extras") or {}).get("error_id") == DISK_FULL for e in events)


async def _all_told(fleet: Fleet) -> bool:
    for conversation_id in fleet.ids:
        if not await _told_disk_full(fleet, conversation_id):
            return False
    return True


async def _stop(fleet: Fleet, conversation_id: str) -> None:
    async with fleet.client() as client:
        stopped = await client.post(f"/api/conversations/{conversation_id}/stop")
    assert stopped.status_code == 200, stopped.text


async def _status(fleet: Fleet, conversation_id: str) -> str:
    async with fleet.client() as client:
        info = (await client.get(f"/api/conversations/{conversation_id}")).json()
    return str(info["status"])


@pytest.mark.timeout(240)
async def test_a_full_disk_pauses_every_conversation_and_they_finish_after(fleet: Fleet) -> None:
    began = time.monotonic()
    filler = fill(fleet.data_dir)
    try:
        await wait_until(lambda: _all_told(fleet), FULL_SECONDS, 0.5, "a disk-full event each")
        await _stop(fleet, fleet.extra)  # a stop works while the disk is full
        assert await _status(fleet, fleet.extra) == "STOPPED"
        # full for FULL_SECONDS: longer than the loops retry a write (8 s)
        statuses = await during_fault(fleet, max(3.0, FULL_SECONDS - (time.monotonic() - began)))
        assert set(statuses) == {503}, statuses
    finally:
        filler.unlink()
    await wait_all_finished(fleet, 120)
    await fleet.check_nothing_lost()
    assert await health_status(fleet.server.base_url) == 200
    assert await _status(fleet, fleet.extra) == "STOPPED"  # the stop held
    assert log_lines(fleet.server, "Traceback") == []


@pytest.mark.timeout(240)
async def test_a_restart_on_a_full_disk_says_why_and_resumes_once_freed(fleet: Fleet) -> None:
    server = fleet.server
    await server.terminate()  # the conversations stay ones that should run
    filler = fill(fleet.data_dir)
    try:
        await server.start()
        assert await health_status(server.base_url) == 503
        async with fleet.client() as client:
            health = (await client.get("/health")).json()
            listed = (await client.get("/api/conversations", params={"limit": 100})).json()
        assert health["disk"].startswith("full"), health
        waiting = [c for c in listed["results"] if c["conversation_id"] in fleet.ids]
        assert len(waiting) == CONVERSATIONS
        assert {(c["status"], c["runtime_status"]) for c in waiting} == {("STOPPED", DISK_FULL)}
        assert len(log_lines(server, "disk of the data dir is full")) == 1
        # and in each conversation, an event saying why it was not resumed
        await wait_until(lambda: _all_told(fleet), 15, 0.5, "a disk-full event each")
    finally:
        filler.unlink()
    await wait_all_finished(fleet, 120)
    await fleet.check_nothing_lost()
    assert log_lines(server, "Traceback") == []
