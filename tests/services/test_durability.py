"""Events are acknowledged only once stored; metadata is written in batches, not per event."""

from __future__ import annotations

from typing import Any

from convo.cluster.local import LocalEventBus
from convo.domain.conversation import AgentState, ConversationMetadata
from convo.domain.events import (
    Event,
    EventSource,
    Metrics,
    agent_state_changed,
    message_action,
)
from convo.services.event_log import EventLog
from convo.services.metadata_sync import MetadataSync
from convo.storage.base import Storage


class CheckingBus(LocalEventBus):
    """Asserts that every stored event it is asked to publish is already in the store."""

    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self.storage = storage
        self.checked = 0

    async def publish(self, conversation_id: str, payload: dict[str, Any]) -> None:
        if "id" in payload:
            stored = await self.storage.events.list(conversation_id, start_id=payload["id"])
            assert stored and stored[0].id == payload["id"]
            self.checked += 1
        await super().publish(conversation_id, payload)


async def test_an_event_is_published_and_returned_only_once_stored(storage: Storage) -> None:
    await storage.conversations.create(ConversationMetadata(conversation_id="c"))
    bus = CheckingBus(storage)
    log = EventLog(storage.events, bus)
    returned = [await log.append("c", message_action(f"m{i}", EventSource.USER)) for i in range(5)]
    assert bus.checked == 5
    assert [e.id for e in returned] == [0, 1, 2, 3, 4]
    assert [e.id for e in await storage.events.list("c")] == [0, 1, 2, 3, 4]


def _with_metrics(cost: float, prompt: int, completion: int) -> Event:
    metrics = {
        "accumulated_cost": cost,
        "accumulated_token_usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }
    event = message_action("x", EventSource.AGENT)
    return event.model_copy(update={"llm_metrics": Metrics.model_validate(metrics)})


async def test_metadata_is_written_in_batches(storage: Storage) -> None:
    await storage.conversations.create(ConversationMetadata(conversation_id="c"))
    sync = MetadataSync(storage.conversations, interval_seconds=3600)
    sync.note("c", message_action("first", EventSource.USER))
    await sync.flush_due()
    assert sync.writes == 1  # the first one goes out at once
    for i in range(100):
        sync.note("c", _with_metrics(0.01 * (i + 1), 10 * (i + 1), i + 1))
        await sync.flush_due()
    assert sync.writes == 1
    stored = await storage.conversations.get("c")
    assert stored.accumulated_cost == 0.0
    sync.note("c", agent_state_changed(AgentState.AWAITING_USER_INPUT))
    await sync.flush_due()
    assert sync.writes == 2  # a state change flushes
    stored = await storage.conversations.get("c")
    assert stored.accumulated_cost == 1.0
    assert (stored.prompt_tokens, stored.completion_tokens, stored.total_tokens) == (
        1000,
        100,
        1100,
    )


async def test_a_flush_of_a_deleted_conversation_is_harmless(storage: Storage) -> None:
    sync = MetadataSync(storage.conversations, interval_seconds=0)
    sync.note("gone", message_action("x", EventSource.USER))
    await sync.flush_all()
