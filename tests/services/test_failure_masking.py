"""A failure's text reaches listeners with secrets masked, as it is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from convo.domain.conversation import ProviderToken, ProviderType, UserSecrets
from convo.llm.scripted import ScriptedLLM
from convo.runtime.base import SandboxSpec
from convo.runtime.fake import FakeSandbox
from convo.services.conversations import NewConversation
from convo.storage.memory import MemoryStorage
from tests.services.conftest import FakeSandboxFactory, make_manager, make_settings, wait_until

TOKEN = "ghp_leaky_token_123"


class LeakyFactory(FakeSandboxFactory):
    """A sandbox whose start fails with a message that quotes the token."""

    def create(self, spec: SandboxSpec) -> FakeSandbox:
        sandbox = super().create(spec)

        async def failing_start() -> None:
            raise RuntimeError(f"cannot reach https://{spec.env['GITHUB_TOKEN']}@example.test")

        sandbox.start = failing_start  # type: ignore[method-assign]
        return sandbox


async def test_a_failure_quoting_a_token_is_masked_for_listeners_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = MemoryStorage()
    await storage.settings.save_secrets(
        None, UserSecrets(provider_tokens={ProviderType.GITHUB: ProviderToken(token=TOKEN)})
    )
    manager = make_manager(make_settings(tmp_path), storage, ScriptedLLM(), LeakyFactory(tmp_path))
    async with manager:
        conversation_id = await manager.create(None, NewConversation())
        listener = manager.event_log.bus.subscribe(conversation_id)
        await manager.start(conversation_id, None)
        seen = []
        while not any(p.get("status_update") for p in seen):
            seen.append(await listener.get())
        await wait_until(lambda: not manager.is_running(conversation_id))
        listener.close()
    status = next(p for p in seen if p.get("status_update"))
    assert "<secret_hidden>" in status["message"]
    assert TOKEN not in str(seen)
    assert TOKEN not in str([e.to_wire() for e in await storage.events.list(conversation_id)])
    assert "cannot reach https://<secret_hidden>@example.test" in caplog.text
    assert TOKEN not in caplog.text
