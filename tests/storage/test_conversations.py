from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from convo.domain.conversation import ConversationMetadata, ConversationTrigger, ProviderType
from convo.errors import RecordNotFound, StorageError
from convo.storage.base import Storage

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def make(conversation_id: str, **fields: object) -> ConversationMetadata:
    fields.setdefault("created_at", T0)
    fields.setdefault("last_updated_at", T0)
    return ConversationMetadata(conversation_id=conversation_id, **fields)  # type: ignore[arg-type]


async def test_create_get_round_trip(storage: Storage) -> None:
    cest = timezone(timedelta(hours=2))
    metadata = make(
        "c1",
        user_id="alice",
        title="Fix the bug",
        selected_repository="octo/repo",
        selected_branch="main",
        git_provider=ProviderType.GITHUB,
        trigger=ConversationTrigger.RESOLVER,
        created_at=datetime(2026, 1, 2, 5, 4, 5, tzinfo=cest),
        llm_model="openai/gpt-4o",
        accumulated_cost=1.25,
        prompt_tokens=10,
        completion_tokens=20,
        total_tokens=30,
        pr_number=[7, 9],
        conversation_instructions="be brief",
        desired_running=True,
        providers_set=[ProviderType.GITHUB, ProviderType.ENTERPRISE_SSO],
    )
    await storage.conversations.create(metadata)

    loaded = await storage.conversations.get("c1")

    assert loaded == metadata
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert loaded.last_updated_at == T0  # microseconds survive


async def test_defaults_and_anonymous_user_round_trip(storage: Storage) -> None:
    metadata = ConversationMetadata(conversation_id="c1", trigger=None)
    await storage.conversations.create(metadata)

    loaded = await storage.conversations.get("c1")

    assert loaded == metadata
    assert loaded.user_id is None
    assert loaded.title == "Conversation c1"
    assert loaded.last_updated_at.tzinfo is not None


async def test_create_twice_is_a_storage_error(storage: Storage) -> None:
    await storage.conversations.create(make("c1"))
    with pytest.raises(StorageError):
        await storage.conversations.create(make("c1"))


async def test_missing_conversation_is_record_not_found(storage: Storage) -> None:
    with pytest.raises(RecordNotFound):
        await storage.conversations.get("nope")
    with pytest.raises(RecordNotFound):
        await storage.conversations.save(make("nope"))
    with pytest.raises(RecordNotFound):
        await storage.conversations.update_fields("nope", title="x")
    assert await storage.conversations.delete("nope") is False


async def test_save_overwrites_metadata(storage: Storage) -> None:
    await storage.conversations.create(make("c1", user_id="alice", title="old"))
    updated = make("c1", user_id="alice", title="new", pr_number=[3], desired_running=True)

    await storage.conversations.save(updated)

    assert await storage.conversations.get("c1") == updated


async def test_update_fields_changes_only_those(storage: Storage) -> None:
    await storage.conversations.create(make("c1", user_id="alice", title="keep", llm_model="m"))
    later = T0 + timedelta(minutes=5)

    await storage.conversations.update_fields(
        "c1",
        last_updated_at=later,
        accumulated_cost=0.5,
        prompt_tokens=1,
        completion_tokens=2,
        total_tokens=3,
        desired_running=True,
        trigger=ConversationTrigger.SLACK,
        providers_set=[ProviderType.GITLAB],
    )

    loaded = await storage.conversations.get("c1")
    assert loaded == make(
        "c1",
        user_id="alice",
        title="keep",
        llm_model="m",
        last_updated_at=later,
        accumulated_cost=0.5,
        prompt_tokens=1,
        completion_tokens=2,
        total_tokens=3,
        desired_running=True,
        trigger=ConversationTrigger.SLACK,
        providers_set=[ProviderType.GITLAB],
    )


async def test_update_fields_rejects_unknown_or_id_fields(storage: Storage) -> None:
    await storage.conversations.create(make("c1"))
    with pytest.raises(TypeError):
        await storage.conversations.update_fields("c1", colour="blue")
    with pytest.raises(TypeError):
        await storage.conversations.update_fields("c1", conversation_id="c2")
    await storage.conversations.update_fields("c1")  # nothing to change is fine


async def test_delete_removes_conversation(storage: Storage) -> None:
    await storage.conversations.create(make("c1"))

    assert await storage.conversations.delete("c1") is True

    with pytest.raises(RecordNotFound):
        await storage.conversations.get("c1")
    assert await storage.conversations.delete("c1") is False


async def test_search_newest_first_in_full_pages(storage: Storage) -> None:
    for i in range(5):
        await storage.conversations.create(
            make(f"c{i}", user_id="alice", created_at=T0 + timedelta(minutes=i))
        )
    await storage.conversations.create(make("other", user_id="bob"))

    first = await storage.conversations.search("alice", limit=2)
    second = await storage.conversations.search("alice", limit=2, page_id=first.next_page_id)
    third = await storage.conversations.search("alice", limit=2, page_id=second.next_page_id)

    pages = [[m.conversation_id for m in page.results] for page in (first, second, third)]
    assert pages == [["c4", "c3"], ["c2", "c1"], ["c0"]]
    assert first.next_page_id is not None and second.next_page_id is not None
    assert third.next_page_id is None


async def test_search_exact_last_page_has_no_next(storage: Storage) -> None:
    for i in range(2):
        await storage.conversations.create(make(f"c{i}", user_id="alice"))

    page = await storage.conversations.search("alice", limit=2)

    assert len(page.results) == 2
    assert page.next_page_id is None


async def test_search_ties_broken_by_id(storage: Storage) -> None:
    for conversation_id in ("b", "c", "a"):
        await storage.conversations.create(make(conversation_id, user_id="alice"))

    page = await storage.conversations.search("alice")

    assert [m.conversation_id for m in page.results] == ["a", "b", "c"]


async def test_search_filters_apply_before_paging(storage: Storage) -> None:
    # Interleave matching and non-matching rows so post-filtering would give short pages.
    for i in range(6):
        match = i % 2 == 0
        await storage.conversations.create(
            make(
                f"c{i}",
                user_id="alice",
                created_at=T0 + timedelta(minutes=i),
                selected_repository="octo/a" if match else "octo/b",
                trigger=ConversationTrigger.GUI if match else ConversationTrigger.SLACK,
            )
        )

    by_repo = await storage.conversations.search("alice", limit=2, selected_repository="octo/a")
    rest = await storage.conversations.search(
        "alice", limit=2, selected_repository="octo/a", page_id=by_repo.next_page_id
    )
    by_trigger = await storage.conversations.search(
        "alice", limit=10, trigger=ConversationTrigger.SLACK
    )
    both = await storage.conversations.search(
        "alice", selected_repository="octo/a", trigger=ConversationTrigger.SLACK
    )

    assert [m.conversation_id for m in by_repo.results] == ["c4", "c2"]
    assert [m.conversation_id for m in rest.results] == ["c0"]
    assert rest.next_page_id is None
    assert [m.conversation_id for m in by_trigger.results] == ["c5", "c3", "c1"]
    assert both.results == []
    assert both.next_page_id is None


async def test_search_empty_and_per_user(storage: Storage) -> None:
    await storage.conversations.create(make("mine", user_id=None))
    await storage.conversations.create(make("theirs", user_id="bob"))

    nobody = await storage.conversations.search("carol")
    anonymous = await storage.conversations.search(None)

    assert nobody.results == [] and nobody.next_page_id is None
    assert [m.conversation_id for m in anonymous.results] == ["mine"]


async def test_search_tolerates_malformed_page_id(storage: Storage) -> None:
    await storage.conversations.create(make("c1", user_id="alice"))

    page = await storage.conversations.search("alice", page_id="not base64!")

    assert [m.conversation_id for m in page.results] == ["c1"]


async def test_count(storage: Storage) -> None:
    for i in range(3):
        await storage.conversations.create(make(f"a{i}", user_id="alice"))
    await storage.conversations.create(make("anon"))

    assert await storage.conversations.count("alice") == 3
    assert await storage.conversations.count(None) == 1
    assert await storage.conversations.count("bob") == 0


async def test_list_desired_running(storage: Storage) -> None:
    await storage.conversations.create(make("on", desired_running=True))
    await storage.conversations.create(make("off"))
    await storage.conversations.create(make("later"))
    await storage.conversations.update_fields("later", desired_running=True)
    await storage.conversations.update_fields("on", desired_running=False)

    running = await storage.conversations.list_desired_running()

    assert [m.conversation_id for m in running] == ["later"]


async def test_concurrent_updates_do_not_fail(storage: Storage) -> None:
    await storage.conversations.create(make("c1"))

    await asyncio.gather(
        *(storage.conversations.update_fields("c1", total_tokens=n) for n in range(20))
    )

    assert (await storage.conversations.get("c1")).total_tokens in range(20)
