"""A loop's writes through a storage outage, with the in-memory store made to fail.

The store fails every append for a while (``StorageUnavailable``), or commits an append and
then reports it failed (a connection lost around its commit). The loop must carry on where
it was, store nothing twice, run each command once, and log the outage once; past the retry
limit it ends without being marked stopped, and the supervisor resumes it once the store
answers, with the command's result kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from convo.domain.events import ErrorObservation, Event
from convo.errors import StorageUnavailable
from convo.llm.base import LLMResponse
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.services.conversations import NewConversation
from convo.storage.memory import MemoryStorage
from tests.polling import wait_until
from tests.services.conftest import (
    FINISHED,
    FakeSandboxFactory,
    last_state,
    make_manager,
    make_settings,
)


class FlakyEvents:
    """The memory event store, failing appends while ``down`` (after committing them when
    ``commit_then_fail``)."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._inner = storage.events
        self.down = False
        self.commit_then_fail = False
        self.failures = 0

    async def append(
        self, conversation_id: str, event: Event, *, token: int | None = None
    ) -> Event:
        if self.down:
            self.failures += 1
            if self.commit_then_fail:
                await self._inner.append(conversation_id, event, token=token)
            raise StorageUnavailable("Appending an event failed: connection refused")
        return await self._inner.append(conversation_id, event, token=token)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


class FlakyConversations:
    """The memory conversation store; listing fails while the events' store is down."""

    def __init__(self, storage: MemoryStorage, events: FlakyEvents) -> None:
        self._inner = storage.conversations
        self._events = events

    async def list_desired_running(self) -> list[object]:
        if self._events.down:
            raise StorageUnavailable("Listing running conversations failed: connection refused")
        return list(await self._inner.list_desired_running())

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def _run(command: str) -> LLMResponse:
    return tool_response("execute_bash", {"command": command})


SCRIPT = [_run("echo one"), _run("echo two"), _run("echo three")]


def _setup(tmp_path: Path, **settings: object) -> tuple[MemoryStorage, FlakyEvents]:
    storage = MemoryStorage()
    flaky = FlakyEvents(storage)
    storage.conversations = FlakyConversations(storage, flaky)  # type: ignore[assignment]
    storage.events = flaky  # type: ignore[assignment]
    return storage, flaky


async def _fail_while_running(flaky: FlakyEvents, sandboxes: FakeSandboxFactory) -> None:
    """Fail the store from the moment the second command runs."""
    await wait_until(lambda: sandboxes.created and len(sandboxes.created[0].commands) >= 2)
    flaky.down = True


def _check(events: list[Event], sandboxes: FakeSandboxFactory) -> None:
    assert [e.id for e in events] == list(range(len(events)))
    runs = [e for e in events if e.action == "run"]
    assert [(e.args or {})["command"] for e in runs] == ["echo one", "echo two", "echo three"]
    for action in runs:
        results = [e for e in events if e.cause == action.id]
        assert [r.observation for r in results] == ["run"], results
    commands = [c.command for s in sandboxes.created for c in s.commands]
    assert commands == ["echo one", "echo two", "echo three"]  # each run once


@pytest.mark.parametrize("commit_then_fail", [False, True])
async def test_a_short_outage_is_ridden_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, commit_then_fail: bool
) -> None:
    storage, flaky = _setup(tmp_path)
    flaky.commit_then_fail = commit_then_fail
    llm = ScriptedLLM(SCRIPT, when_exhausted=tool_response("finish", {"message": "done"}))
    sandboxes = FakeSandboxFactory(tmp_path, delay_seconds=0.2)
    settings = make_settings(
        tmp_path, storage_retry_seconds=10, storage_retry_max_delay_seconds=0.2
    )
    manager = make_manager(settings, storage, llm, sandboxes)
    caplog.set_level(logging.WARNING)
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="go"))
        await manager.start(conversation_id, None)
        await _fail_while_running(flaky, sandboxes)
        await wait_until(lambda: flaky.failures >= 3)
        flaky.down = False
        await wait_until(lambda: last_state(manager, conversation_id), 10)
        await wait_until(
            lambda: _is(last_state(manager, conversation_id), FINISHED), 10, what="finish"
        )
        assert manager.is_running(conversation_id)  # the same loop carried on
        _check(await storage.events.list(conversation_id), sandboxes)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback
    if not commit_then_fail:  # (there, each append found stored counts as storage back)
        outage = [r for r in caplog.records if "storage unavailable" in r.getMessage()]
        assert len(outage) == 1


async def _is(state: object, wanted: str) -> bool:
    return await state == wanted  # type: ignore[misc]


async def test_past_the_limit_the_loop_ends_and_is_resumed_with_its_result(
    tmp_path: Path,
) -> None:
    storage, flaky = _setup(tmp_path)
    llm = ScriptedLLM(SCRIPT, when_exhausted=tool_response("finish", {"message": "done"}))
    sandboxes = FakeSandboxFactory(tmp_path, delay_seconds=0.2)
    settings = make_settings(tmp_path, storage_retry_seconds=1, storage_retry_max_delay_seconds=0.2)
    manager = make_manager(settings, storage, llm, sandboxes)
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="go"))
        await manager.start(conversation_id, None)
        await _fail_while_running(flaky, sandboxes)
        await wait_until(
            lambda: not manager.is_running(conversation_id), 10, what="the loop to end"
        )
        assert (await storage.conversations.get(conversation_id)).desired_running
        assert (await manager.supervisor.reconcile()).resumed == []  # still down: nothing
        flaky.down = False
        assert (await manager.supervisor.reconcile()).resumed == [conversation_id]
        await wait_until(
            lambda: _is(last_state(manager, conversation_id), FINISHED), 10, what="finish"
        )
        events = await storage.events.list(conversation_id)
        _check(events, sandboxes)  # "echo two" finished before the outage: not run again
        notices = [
            e
            for e in events
            if isinstance(e, ErrorObservation) and e.error_id == "STATUS$ERROR_STORAGE"
        ]
        assert len(notices) == 1 and "could not store its events" in str(notices[0].content)
