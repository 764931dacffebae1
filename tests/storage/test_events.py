from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import insert

from convo.domain.conversation import AgentState, ConversationMetadata
from convo.domain.events import (
    Event,
    EventSource,
    agent_state_changed,
    error_observation,
    message_action,
)
from convo.errors import RecordNotFound
from convo.storage import open_storage
from convo.storage.base import Storage
from convo.storage.schema import events
from convo.storage.sql import SqlStorage


async def new_conversation(storage: Storage, conversation_id: str = "c1") -> str:
    await storage.conversations.create(ConversationMetadata(conversation_id=conversation_id))
    return conversation_id


async def append_many(storage: Storage, conversation_id: str, count: int) -> list[Event]:
    return [
        await storage.events.append(conversation_id, message_action(f"m{i}", EventSource.USER))
        for i in range(count)
    ]


async def test_append_assigns_ids_and_keeps_the_event(storage: Storage) -> None:
    conversation_id = await new_conversation(storage)
    event = message_action("hello", EventSource.USER, wait_for_response=True)

    first = await storage.events.append(conversation_id, event)
    second = await storage.events.append(conversation_id, agent_state_changed(AgentState.RUNNING))

    assert (first.id, second.id) == (0, 1)
    assert first == event.stored(0)
    assert await storage.events.list(conversation_id) == [first, second]


async def test_append_sets_an_openhands_timestamp_when_missing(storage: Storage) -> None:
    conversation_id = await new_conversation(storage)
    event = message_action("no time", EventSource.USER).model_copy(update={"timestamp": ""})

    stored = await storage.events.append(conversation_id, event)

    parsed = datetime.fromisoformat(stored.timestamp)  # naive local time, as OpenHands writes
    assert parsed.tzinfo is None
    assert abs((datetime.now() - parsed).total_seconds()) < 60
    assert (await storage.events.list(conversation_id))[0].timestamp == stored.timestamp


async def test_append_to_missing_conversation_is_record_not_found(storage: Storage) -> None:
    with pytest.raises(RecordNotFound):
        await storage.events.append("nope", message_action("x", EventSource.USER))
    assert await storage.events.last_id("nope") == -1


async def test_concurrent_appends_get_each_id_once(storage: Storage) -> None:
    conversation_id = await new_conversation(storage)

    stored = await asyncio.gather(
        *(
            storage.events.append(conversation_id, message_action(f"m{i}", EventSource.USER))
            for i in range(50)
        )
    )

    assert sorted(e.id for e in stored) == list(range(50))
    listed = await storage.events.list(conversation_id)
    assert [e.id for e in listed] == list(range(50))
    assert sorted(e.message for e in listed) == sorted(f"m{i}" for i in range(50))


async def test_ids_are_per_conversation(storage: Storage) -> None:
    a = await new_conversation(storage, "a")
    b = await new_conversation(storage, "b")

    await append_many(storage, a, 3)
    stored_b = await append_many(storage, b, 2)

    assert [e.id for e in stored_b] == [0, 1]
    assert await storage.events.last_id(a) == 2


async def test_list_ranges(storage: Storage) -> None:
    conversation_id = await new_conversation(storage)
    await append_many(storage, conversation_id, 10)

    async def ids(**kwargs: object) -> list[int]:
        return [e.id for e in await storage.events.list(conversation_id, **kwargs)]  # type: ignore[arg-type]

    assert await ids() == list(range(10))
    assert await ids(start_id=7) == [7, 8, 9]
    assert await ids(start_id=2, end_id=4) == [2, 3, 4]
    assert await ids(end_id=1) == [0, 1]
    assert await ids(reverse=True, limit=3) == [9, 8, 7]
    assert await ids(start_id=3, end_id=6, reverse=True) == [6, 5, 4, 3]
    assert await ids(start_id=5, limit=2) == [5, 6]
    assert await ids(start_id=10) == []
    assert await ids(limit=0) == []
    assert await storage.events.list("nope") == []


async def test_last_id(storage: Storage) -> None:
    conversation_id = await new_conversation(storage)
    assert await storage.events.last_id(conversation_id) == -1

    await append_many(storage, conversation_id, 3)

    assert await storage.events.last_id(conversation_id) == 2


async def test_delete_removes_events_and_ids_restart(storage: Storage) -> None:
    conversation_id = await new_conversation(storage)
    await append_many(storage, conversation_id, 3)

    await storage.conversations.delete(conversation_id)

    assert await storage.events.list(conversation_id) == []
    assert await storage.events.last_id(conversation_id) == -1
    await new_conversation(storage, conversation_id)
    assert (await append_many(storage, conversation_id, 1))[0].id == 0


async def test_save_does_not_reset_the_event_counter(storage: Storage) -> None:
    conversation_id = await new_conversation(storage)
    await append_many(storage, conversation_id, 2)

    await storage.conversations.save(ConversationMetadata(conversation_id, title="renamed"))
    await storage.conversations.update_fields(conversation_id, title="again")

    assert (await append_many(storage, conversation_id, 1))[0].id == 2


async def test_events_keep_unknown_fields(storage: Storage) -> None:
    conversation_id = await new_conversation(storage)
    event = Event.from_wire({"observation": "run", "content": "ok", "future_field": {"a": 1}})

    await storage.events.append(conversation_id, event)

    loaded = (await storage.events.list(conversation_id))[0]
    assert loaded.to_wire()["future_field"] == {"a": 1}


async def test_old_shaped_rows_still_load(sql_storage: SqlStorage) -> None:
    conversation_id = await new_conversation(sql_storage)
    old_payload = {
        # no "id" in the payload, a naive timestamp, and fields this version does not know
        "timestamp": "2024-05-01T10:00:00",
        "source": "agent",
        "observation": "error",
        "content": "boom",
        "extras": {"error_id": "X"},
        "legacy_flag": True,
        "hidden": {"nested": [1, 2]},
    }
    async with sql_storage.engine.begin() as conn:
        await conn.execute(
            insert(events).values(
                conversation_id=conversation_id,
                id=0,
                timestamp=old_payload["timestamp"],
                payload=old_payload,
            )
        )

    (loaded,) = await sql_storage.events.list(conversation_id)

    assert loaded.id == 0
    assert loaded.content == "boom"
    assert loaded.timestamp == "2024-05-01T10:00:00"
    assert loaded.to_wire()["legacy_flag"] is True
    assert loaded.to_wire()["hidden"] == {"nested": [1, 2]}


async def test_appends_from_two_servers_share_one_sequence(sql_url: str) -> None:
    first, second = open_storage(sql_url), open_storage(sql_url)
    try:
        await first.migrate()
        await second.migrate()
        conversation_id = await new_conversation(first)

        stored = await asyncio.gather(
            *(
                server.events.append(conversation_id, error_observation(f"e{i}"))
                for i in range(10)
                for server in (first, second)
            )
        )

        assert sorted(e.id for e in stored) == list(range(20))
        assert await second.events.last_id(conversation_id) == 19
    finally:
        await first.aclose()
        await second.aclose()
