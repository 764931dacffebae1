"""A conversation's idempotency key: found per user, unique per user, None for most."""

from __future__ import annotations

import pytest

from convo.domain.conversation import ConversationMetadata
from convo.errors import StorageError
from convo.storage.base import Storage


async def test_found_by_its_key_for_its_user_only(storage: Storage) -> None:
    await storage.conversations.create(
        ConversationMetadata(conversation_id="c1", user_id="alice", idempotency_key="k")
    )
    await storage.conversations.create(ConversationMetadata(conversation_id="c2", user_id="alice"))
    found = await storage.conversations.find_by_idempotency_key("alice", "k")
    assert found is not None and found.conversation_id == "c1"
    assert found.idempotency_key == "k"
    assert await storage.conversations.find_by_idempotency_key("bob", "k") is None
    assert await storage.conversations.find_by_idempotency_key("alice", "other") is None


async def test_one_conversation_per_user_and_key(storage: Storage) -> None:
    await storage.conversations.create(
        ConversationMetadata(conversation_id="c1", user_id=None, idempotency_key="k")
    )
    with pytest.raises(StorageError):
        await storage.conversations.create(
            ConversationMetadata(conversation_id="c2", user_id=None, idempotency_key="k")
        )
    # another user may use the same key, and conversations without a key never clash
    await storage.conversations.create(
        ConversationMetadata(conversation_id="c3", user_id="bob", idempotency_key="k")
    )
    await storage.conversations.create(ConversationMetadata(conversation_id="c4"))
    await storage.conversations.create(ConversationMetadata(conversation_id="c5"))


async def test_a_released_key_may_be_used_again(storage: Storage) -> None:
    await storage.conversations.create(
        ConversationMetadata(conversation_id="c1", idempotency_key="k")
    )
    await storage.conversations.update_fields("c1", idempotency_key=None)
    await storage.conversations.create(
        ConversationMetadata(conversation_id="c2", idempotency_key="k")
    )
    found = await storage.conversations.find_by_idempotency_key(None, "k")
    assert found is not None and found.conversation_id == "c2"
