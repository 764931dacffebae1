"""The sandbox's memory-backed filesystems are capped: /dev is read-only and /dev/shm is
as small as /tmp, so files written there (memory, not disk: no workspace quota sees them)
cannot take the host's memory where no cgroup limits it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandbox
from convo.runtime.limits import ResourceLimits

MIB = 2**20


@pytest.mark.timeout(60)
async def test_dev_is_read_only_and_dev_shm_is_capped(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "run as root, as the sandbox is meant to"
    limits = ResourceLimits(tmp_size_bytes=8 * MIB)
    sandbox = BwrapSandbox(SandboxSpec("memfs", tmp_path / "ws"), network="none", limits=limits)
    await sandbox.start()
    try:
        dev = await sandbox.run("head -c 1M /dev/zero > /dev/filler && echo DEV-WRITTEN")
        assert "DEV-WRITTEN" not in dev.output, dev.output
        shm = await sandbox.run(
            "head -c 64M /dev/zero > /dev/shm/filler; du -m /dev/shm/filler | cut -f1"
        )
        assert int(shm.output.strip().splitlines()[-1]) <= 8, shm.output
        usable = await sandbox.run(
            "rm /dev/shm/filler && echo ok > /dev/null && echo small > /dev/shm/lock "
            "&& cat /dev/shm/lock"
        )
        assert usable.output.strip().endswith("small"), usable.output
    finally:
        await sandbox.close()
