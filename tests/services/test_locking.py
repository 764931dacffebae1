"""Starts of different conversations never wait for each other: not for a slow launch, not for
an eviction, and a stop says whether the loop really ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from convo.domain.conversation import ConversationStatus, UserSecrets, UserSettings
from convo.llm.scripted import ScriptedLLM
from convo.services.conversations import ConversationManager, NewConversation
from convo.services.stopping import StopResult
from convo.storage.base import SettingsStore
from convo.storage.memory import MemoryStorage
from tests.services.conftest import (
    ClosingGate,
    FakeSandboxFactory,
    make_manager,
    make_settings,
    wait_until,
)


class GatedSettings:
    """The settings store, except that loading the settings of ``user`` waits for ``gate``
    (a launch reads them while holding its conversation's lock)."""

    def __init__(self, inner: SettingsStore, user: str) -> None:
        self._inner = inner
        self._user = user
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def load_settings(self, user_id: str | None) -> UserSettings | None:
        if user_id == self._user:
            self.entered.set()
            await self.gate.wait()
        return await self._inner.load_settings(user_id)

    async def save_settings(self, user_id: str | None, settings: UserSettings) -> None:
        await self._inner.save_settings(user_id, settings)

    async def load_secrets(self, user_id: str | None) -> UserSecrets:
        return await self._inner.load_secrets(user_id)

    async def save_secrets(self, user_id: str | None, secrets: UserSecrets) -> None:
        await self._inner.save_secrets(user_id, secrets)


async def _created(manager: ConversationManager, user: str | None) -> str:
    return await manager.create(user, NewConversation())


async def test_a_slow_launch_does_not_hold_up_another_conversation(tmp_path: Path) -> None:
    storage = MemoryStorage()
    gated = GatedSettings(storage.settings, user="slow")
    storage.settings = gated
    manager = make_manager(
        make_settings(tmp_path), storage, ScriptedLLM(), FakeSandboxFactory(tmp_path / "ws")
    )
    async with manager:
        slow = await _created(manager, "slow")
        quick = await _created(manager, "quick")
        slow_start = asyncio.create_task(manager.start(slow, "slow"))
        await gated.entered.wait()  # the slow launch is in its critical section now
        assert await manager.start(quick, "quick") is ConversationStatus.STARTING
        assert not slow_start.done()
        # concurrent starts of the slow one wait for its one launch, and make no second loop
        again = [asyncio.create_task(manager.start(slow, "slow")) for _ in range(20)]
        gated.gate.set()
        statuses = await asyncio.gather(slow_start, *again)
        assert set(statuses) <= {ConversationStatus.STARTING, ConversationStatus.RUNNING}
        await wait_until(lambda: manager.status(slow) is ConversationStatus.RUNNING)
        assert sorted(manager.running_ids("slow")) == [slow]


async def test_an_eviction_does_not_hold_up_another_conversation(tmp_path: Path) -> None:
    storage = MemoryStorage()
    sandboxes = ClosingGate(tmp_path / "ws")
    manager = make_manager(
        make_settings(tmp_path, max_concurrent_conversations=1),
        storage,
        ScriptedLLM(),
        sandboxes,
    )
    async with manager:
        old = await _created(manager, "a")
        await manager.start(old, "a")
        await wait_until(lambda: manager.status(old) is ConversationStatus.RUNNING)
        sandboxes.gate.clear()  # the old loop's sandbox now takes its time to close
        new = await _created(manager, "a")
        evicting = asyncio.create_task(manager.start(new, "a"))  # over the limit: evicts old
        await sandboxes.closing.wait()
        other = await _created(manager, "b")
        assert await manager.start(other, "b") is ConversationStatus.STARTING
        assert not evicting.done()  # the eviction is still waiting for the old sandbox
        assert manager.is_running(new)  # the new loop was registered before the eviction
        sandboxes.gate.set()
        await evicting
        assert not manager.is_running(old)
        assert sorted(manager.running_ids("a")) == [new]


async def test_a_stop_says_when_the_loop_has_not_ended(tmp_path: Path) -> None:
    storage = MemoryStorage()
    sandboxes = ClosingGate(tmp_path / "ws")
    manager = make_manager(
        make_settings(tmp_path, stop_timeout_seconds=0.2), storage, ScriptedLLM(), sandboxes
    )
    async with manager:
        cid = await _created(manager, None)
        await manager.start(cid, None)
        await wait_until(lambda: manager.status(cid) is ConversationStatus.RUNNING)
        sandboxes.gate.clear()
        assert await manager.stop(cid) is StopResult.STILL_RUNNING
        assert manager.is_running(cid)  # and its status says so
        assert not (await storage.conversations.get(cid)).desired_running  # never resumed
        sandboxes.gate.set()
        await wait_until(lambda: not manager.is_running(cid))
        assert await manager.stop(cid) is StopResult.NOT_RUNNING
