"""A start or a message that arrives while the conversation is being stopped waits for the
stop to finish, then starts a new loop: it is never told RUNNING by a loop that is going."""

from __future__ import annotations

import asyncio
from pathlib import Path

from convo.domain.conversation import ConversationStatus
from convo.llm.scripted import ScriptedLLM, text_response
from convo.runtime.base import SandboxSpec
from convo.runtime.fake import FakeSandbox
from convo.services.conversations import ConversationManager, NewConversation
from convo.services.stopping import StopResult
from convo.storage.memory import MemoryStorage
from tests.services.conftest import (
    FakeSandboxFactory,
    agent_states,
    make_manager,
    make_settings,
    wait_until,
)


async def _slow_close(sandbox: FakeSandbox) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the sandbox's close wait for the returned gate; the second event is set once the
    close has begun (the stop is then in progress)."""
    gate, closing = asyncio.Event(), asyncio.Event()
    original = sandbox.close

    async def slow_close() -> None:
        closing.set()
        await gate.wait()
        await original()

    sandbox.close = slow_close  # type: ignore[method-assign]
    return gate, closing


async def _settle() -> None:
    """Let every task that can run without I/O run (all storage here is in memory)."""
    for _ in range(100):
        await asyncio.sleep(0)


async def _running(manager: ConversationManager, sandboxes: FakeSandboxFactory) -> str:
    cid = await manager.create(None, NewConversation(initial_user_msg="go"))
    await manager.start(cid, None)
    await wait_until(lambda: manager.status(cid) is ConversationStatus.RUNNING)
    await wait_until(
        lambda: (
            manager.agent_state(cid) is not None
            and manager.agent_state(cid).value == "awaiting_user_input"
        )
    )
    return cid


async def test_a_start_during_a_stop_starts_a_new_loop_after_it(tmp_path: Path) -> None:
    storage = MemoryStorage()
    sandboxes = FakeSandboxFactory(tmp_path / "ws")
    manager = make_manager(
        make_settings(tmp_path), storage, ScriptedLLM([text_response("hi")]), sandboxes
    )
    async with manager:
        cid = await _running(manager, sandboxes)
        gate, closing = await _slow_close(sandboxes.created[0])
        stopping = asyncio.create_task(manager.stop(cid))
        await asyncio.wait_for(closing.wait(), 10)
        starting = asyncio.create_task(manager.start(cid, None))
        await _settle()
        assert not starting.done()  # it waits for the stop instead of answering RUNNING
        gate.set()
        assert await stopping is StopResult.STOPPED
        assert await starting in (ConversationStatus.STARTING, ConversationStatus.RUNNING)
        await wait_until(lambda: manager.status(cid) is ConversationStatus.RUNNING)
        assert len(sandboxes.created) == 2
        states = agent_states(await storage.events.list(cid))
        assert states[states.index("stopped") + 1] == "loading"  # the new loop came after


async def test_a_message_during_a_stop_is_answered_by_the_next_loop(tmp_path: Path) -> None:
    storage = MemoryStorage()
    sandboxes = FakeSandboxFactory(tmp_path / "ws")
    llm = ScriptedLLM([text_response("hi"), text_response("answer to the late message")])
    manager = make_manager(make_settings(tmp_path), storage, llm, sandboxes)
    async with manager:
        cid = await _running(manager, sandboxes)
        gate, closing = await _slow_close(sandboxes.created[0])
        stopping = asyncio.create_task(manager.stop(cid))
        await asyncio.wait_for(closing.wait(), 10)
        sending = asyncio.create_task(
            manager.send_user_event(
                cid, {"action": "message", "args": {"content": "one more thing"}}
            )
        )
        await _settle()
        gate.set()
        await stopping
        await sending

        async def answered() -> bool:
            events = await storage.events.list(cid)
            return any(e.message == "answer to the late message" for e in events)

        await wait_until(answered)


async def test_a_stop_whose_cancel_is_lost_still_stops_the_loop(tmp_path: Path) -> None:
    """Python 3.11's wait_for can swallow a cancel that lands with a result; stop re-cancels."""
    storage = MemoryStorage()
    sandboxes = FakeSandboxFactory(tmp_path / "ws")
    swallowed = asyncio.Event()

    class Swallowing(FakeSandboxFactory):
        def create(self, spec: SandboxSpec) -> FakeSandbox:
            sandbox = sandboxes.create(spec)

            async def start() -> None:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:  # lost, as by the wait_for race
                    swallowed.set()
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]

            sandbox.start = start  # type: ignore[method-assign]
            return sandbox

    manager = make_manager(make_settings(tmp_path), storage, ScriptedLLM(), Swallowing(tmp_path))
    async with manager:
        cid = await manager.create(None, NewConversation())
        await manager.start(cid, None)
        await wait_until(lambda: len(sandboxes.created) == 1)
        began = asyncio.get_running_loop().time()
        assert await manager.stop(cid) is StopResult.STOPPED
        assert swallowed.is_set()
        assert manager.status(cid) is ConversationStatus.STOPPED
        assert asyncio.get_running_loop().time() - began < 3
        assert sandboxes.created[0].closed
