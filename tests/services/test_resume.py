"""Resuming after a restart: the supervisor reconciles what should run with what runs."""

from __future__ import annotations

from pathlib import Path

from convo.domain.conversation import (
    ConversationStatus,
    ProviderToken,
    ProviderType,
    UserSecrets,
)
from convo.domain.events import ErrorObservation
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from convo.runtime.base import SandboxSpec
from convo.runtime.fake import FakeSandbox
from convo.services.conversations import NewConversation
from convo.services.stopping import StopResult
from convo.services.supervisor import STOPPED_BY_RESTART
from convo.storage.memory import MemoryStorage
from tests.services.conftest import (
    FINISHED,
    FakeSandboxFactory,
    agent_states,
    last_state,
    make_manager,
    make_settings,
    wait_until,
)

FINISH = tool_response("finish", {"message": "done"})


async def _crash_mid_command(tmp_path: Path, storage: MemoryStorage) -> tuple[str, int]:
    """A conversation whose loop dies while its command runs, as after kill -9."""
    llm = ScriptedLLM([tool_response("execute_bash", {"command": "sleep 100"})])
    sandboxes = FakeSandboxFactory(tmp_path / "ws", delay_seconds=100)
    manager = make_manager(make_settings(tmp_path), storage, llm, sandboxes)
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="go"))
        await manager.start(conversation_id, None)
        running = manager.running_conversations()[0]
        await wait_until(lambda: running.pending_action is not None)
        action_id = running.pending_action
        assert action_id is not None
        await manager.shutdown(grace_seconds=0.2)  # records no stop, like a crash
    assert (await storage.conversations.get(conversation_id)).desired_running
    return conversation_id, action_id


async def test_resumed_on_start_with_the_lost_result_recorded_as_interrupted(
    tmp_path: Path,
) -> None:
    storage = MemoryStorage()
    conversation_id, action_id = await _crash_mid_command(tmp_path, storage)
    llm = ScriptedLLM([FINISH])
    manager = make_manager(make_settings(tmp_path), storage, llm, FakeSandboxFactory(tmp_path))
    async with manager:
        assert manager.status(conversation_id) in (
            ConversationStatus.STARTING,
            ConversationStatus.RUNNING,
        )

        async def finished() -> bool:
            return await last_state(manager, conversation_id) == FINISHED

        await wait_until(finished, timeout=5)
        history = await manager.event_log.history(conversation_id)
    interrupted = [e for e in history if e.cause == action_id and e.observation]
    assert len(interrupted) == 1
    assert "interrupted" in (interrupted[0].content or "")
    assert [e.id for e in history] == list(range(len(history)))
    # the model saw the whole history, the interrupted result included
    assert any("interrupted" in str(m) for m in llm.requests[0].messages)


async def test_on_restart_stop_marks_it_stopped_and_says_why(tmp_path: Path) -> None:
    storage = MemoryStorage()
    conversation_id, _ = await _crash_mid_command(tmp_path, storage)
    settings = make_settings(tmp_path, on_restart="stop")
    manager = make_manager(settings, storage, ScriptedLLM(), FakeSandboxFactory(tmp_path))
    async with manager:
        assert manager.status(conversation_id) is ConversationStatus.STOPPED
        history = await manager.event_log.history(conversation_id)
    assert isinstance(history[-2], ErrorObservation)
    assert history[-2].error_id == STOPPED_BY_RESTART
    assert agent_states(history)[-1] == "stopped"
    assert not (await storage.conversations.get(conversation_id)).desired_running


async def test_a_user_stop_is_not_resumed(tmp_path: Path) -> None:
    storage = MemoryStorage()
    llm = ScriptedLLM(when_exhausted=text_response("hello"))
    manager = make_manager(make_settings(tmp_path), storage, llm, FakeSandboxFactory(tmp_path))
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="hi"))
        await manager.start(conversation_id, None)
        assert (await storage.conversations.get(conversation_id)).desired_running
        assert await manager.stop(conversation_id) is StopResult.STOPPED
    assert not (await storage.conversations.get(conversation_id)).desired_running
    manager = make_manager(make_settings(tmp_path), storage, llm, FakeSandboxFactory(tmp_path))
    async with manager:
        assert manager.status(conversation_id) is ConversationStatus.STOPPED
        assert (await manager.supervisor.reconcile()).resumed == []


async def test_a_failed_loop_shows_at_once_and_is_not_retried(tmp_path: Path) -> None:
    storage = MemoryStorage()
    sandboxes = FakeSandboxFactory(tmp_path, fail_start=True)
    manager = make_manager(make_settings(tmp_path), storage, ScriptedLLM(), sandboxes)
    async with manager:
        conversation_id = await manager.create(None, NewConversation(initial_user_msg="hi"))
        await manager.start(conversation_id, None)
        await wait_until(lambda: not manager.is_running(conversation_id))
        assert manager.status(conversation_id) is ConversationStatus.STOPPED
        assert await last_state(manager, conversation_id) == "error"
        assert not (await storage.conversations.get(conversation_id)).desired_running
        assert (await manager.supervisor.run_round()).resumed == []
        assert len(sandboxes.created) == 1


async def test_the_periodic_round_resumes_a_loop_that_should_run(tmp_path: Path) -> None:
    storage = MemoryStorage()
    llm = ScriptedLLM(when_exhausted=text_response("hello"))
    manager = make_manager(make_settings(tmp_path), storage, llm, FakeSandboxFactory(tmp_path))
    async with manager:
        conversation_id = await manager.create(None, NewConversation())
        await storage.conversations.update_fields(conversation_id, desired_running=True)
        result = await manager.supervisor.run_round()
        assert result.resumed == [conversation_id]
        assert manager.is_running(conversation_id)
        assert (await manager.supervisor.reconcile()).resumed == []  # once


async def test_resume_keeps_the_per_user_limit_and_prefers_the_newest(tmp_path: Path) -> None:
    storage = MemoryStorage()
    settings = make_settings(tmp_path, max_concurrent_conversations=2)
    llm = ScriptedLLM(when_exhausted=text_response("hello"))
    manager = make_manager(settings, storage, llm, FakeSandboxFactory(tmp_path))
    ids = []
    async with manager:
        for _ in range(3):
            conversation_id = await manager.create(None, NewConversation())
            ids.append(conversation_id)
            await storage.conversations.update_fields(conversation_id, desired_running=True)
    # the first manager resumed them oldest first at the next round; none runs now
    manager = make_manager(settings, storage, llm, FakeSandboxFactory(tmp_path))
    async with manager:
        assert sorted(manager.running_ids()) == sorted(ids[1:])


async def test_one_conversation_that_cannot_resume_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    storage = MemoryStorage()
    llm = ScriptedLLM(when_exhausted=tool_response("execute_bash", {"command": "sleep 100"}))
    sandboxes = FakeSandboxFactory(tmp_path / "ws", delay_seconds=100)
    manager = make_manager(make_settings(tmp_path), storage, llm, sandboxes)
    async with manager:  # two conversations mid-command, then a crash-like stop
        first = await manager.create(None, NewConversation(initial_user_msg="go"))
        second = await manager.create(None, NewConversation(initial_user_msg="go"))
        for conversation_id in (first, second):
            await manager.start(conversation_id, None)
        await wait_until(
            lambda: all(c.pending_action is not None for c in manager.running_conversations())
        )
        await manager.shutdown(grace_seconds=0.2)
    broken = (await storage.conversations.get(first)).user_id
    original = storage.settings.load_settings
    calls = {"n": 0}

    async def load_settings(user_id: str | None) -> object:
        calls["n"] += 1
        if calls["n"] == 1:  # the first resume meets an unexpected failure
            raise RuntimeError("unexpected")
        return await original(user_id)

    storage.settings.load_settings = load_settings  # type: ignore[method-assign, assignment]
    assert broken is None
    manager = make_manager(
        make_settings(tmp_path),
        storage,
        ScriptedLLM([FINISH, FINISH]),
        FakeSandboxFactory(tmp_path),
    )
    async with manager:  # start-up itself must not fail
        running = {
            c for c in (first, second) if manager.status(c) is not ConversationStatus.STOPPED
        }
        assert len(running) == 1


async def test_a_resumed_loop_gets_the_tokens_it_was_started_with(tmp_path: Path) -> None:
    storage = MemoryStorage()
    await storage.settings.save_secrets(
        None,
        UserSecrets(
            provider_tokens={
                ProviderType.GITHUB: ProviderToken(token="ghp_chosen_one"),
                ProviderType.GITLAB: ProviderToken(token="glpat_not_chosen"),
            }
        ),
    )
    envs: list[dict[str, str]] = []

    class Recording(FakeSandboxFactory):
        def create(self, spec: SandboxSpec) -> FakeSandbox:
            envs.append(dict(spec.env))
            return super().create(spec)

    manager = make_manager(make_settings(tmp_path), storage, ScriptedLLM(), Recording(tmp_path))
    async with manager:
        conversation_id = await manager.create(None, NewConversation())
        await manager.start(conversation_id, None, [ProviderType.GITHUB])
        await wait_until(lambda: manager.status(conversation_id) is ConversationStatus.RUNNING)
        await manager.shutdown(grace_seconds=0.2)  # records no stop, like a crash
    manager = make_manager(make_settings(tmp_path), storage, ScriptedLLM(), Recording(tmp_path))
    async with manager:
        await wait_until(lambda: manager.status(conversation_id) is ConversationStatus.RUNNING)
    assert [sorted(env) for env in envs] == [["GITHUB_TOKEN"], ["GITHUB_TOKEN"]]
