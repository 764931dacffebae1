"""ReleasableSandbox: released only between commands, started again by the next one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from convo.runtime.base import SandboxSpec
from convo.runtime.fake import FakeSandbox, RecordedCommand
from convo.services.idle_sandboxes import ReleasableSandboxes
from convo.services.orphans import ProcessRegistry
from tests.services.conftest import FakeSandboxFactory


async def test_released_between_commands_only_and_started_again(tmp_path: Path) -> None:
    gate = asyncio.Event()
    running = asyncio.Event()

    class Gated(FakeSandboxFactory):
        def create(self, spec: SandboxSpec) -> FakeSandbox:
            sandbox = super().create(spec)

            async def wait(_command: RecordedCommand) -> None:
                running.set()
                await gate.wait()

            sandbox.on_run = wait
            return sandbox

    factory = Gated(tmp_path / "ws")
    sandboxes = ReleasableSandboxes(factory, ProcessRegistry(None))
    sandbox = sandboxes.create(SandboxSpec("c1", tmp_path / "ws" / "c1"))
    await sandbox.start()
    command = asyncio.create_task(sandbox.run("make"))
    await running.wait()
    assert not await sandbox.release()  # a command runs: not now
    gate.set()
    await command
    assert await sandbox.release()
    assert sandbox.released and factory.created[0].closed
    assert not await sandbox.release()  # once is enough

    await sandbox.run("ls")  # the next command gets a new sandbox
    assert len(factory.created) == 2 and factory.created[1].started
    assert [c.command for c in factory.created[1].commands] == ["ls"]
    await sandbox.close()
    assert factory.created[1].closed
    assert not await sandbox.release()
