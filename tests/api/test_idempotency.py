"""POST /api/conversations with an Idempotency-Key: a retried create returns the same
conversation and never makes a second one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from convo.domain.conversation import utcnow
from convo.services.conversations import NewConversation
from tests.api.conftest import RunningServer, ServeFactory


async def _count(server: RunningServer) -> int:
    listed = await server.client.get("/api/conversations", params={"limit": 100})
    return len(listed.json()["results"])


async def test_a_retried_create_returns_the_same_conversation(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        client = server.client
        body = {"initial_user_msg": "hello"}
        headers = {"Idempotency-Key": "create-1"}
        first = await client.post("/api/conversations", json=body, headers=headers)
        assert first.status_code == 200
        cid = first.json()["conversation_id"]
        # retried, also several at once (a client that timed out and retried twice)
        again = await asyncio.gather(
            *(client.post("/api/conversations", json=body, headers=headers) for _ in range(5))
        )
        assert {r.status_code for r in again} == {200}
        assert {r.json()["conversation_id"] for r in again} == {cid}
        assert await _count(server) == 1
        events = (await client.get(f"/api/conversations/{cid}/events")).json()["events"]
        messages = [e for e in events if e.get("source") == "user" and e.get("action") == "message"]
        assert [e["args"]["content"] for e in messages] == ["hello"]

        other = await client.post(
            "/api/conversations", json=body, headers={"Idempotency-Key": "create-2"}
        )
        unkeyed = await client.post("/api/conversations", json=body)
        assert len({cid, other.json()["conversation_id"], unkeyed.json()["conversation_id"]}) == 3
        assert await _count(server) == 3


async def test_concurrent_creates_with_one_key_make_one_conversation(
    server_factory: ServeFactory,
) -> None:
    async with server_factory() as server:
        headers = {"Idempotency-Key": "same"}
        answers = await asyncio.gather(
            *(server.client.post("/api/conversations", json={}, headers=headers) for _ in range(10))
        )
        assert len({r.json()["conversation_id"] for r in answers}) == 1
        assert await _count(server) == 1


async def test_the_key_is_per_user(server_factory: ServeFactory) -> None:
    """The server has one user today (the key holder); another user's create, through the
    manager, does not find the conversation the same key made for the first."""
    async with server_factory() as server:
        headers = {"Idempotency-Key": "k"}
        mine = (await server.client.post("/api/conversations", json={}, headers=headers)).json()
        theirs = await server.manager.create("someone-else", NewConversation(), "k")
        assert theirs != mine["conversation_id"]
        assert await server.manager.create("someone-else", NewConversation(), "k") == theirs


async def test_an_expired_key_makes_a_new_conversation(server_factory: ServeFactory) -> None:
    async with server_factory(idempotency_key_seconds=60) as server:
        headers = {"Idempotency-Key": "old"}
        first = (await server.client.post("/api/conversations", json={}, headers=headers)).json()
        old = first["conversation_id"]
        await server.manager.storage.conversations.update_fields(
            old, created_at=utcnow() - timedelta(seconds=120)
        )
        second = (await server.client.post("/api/conversations", json={}, headers=headers)).json()
        assert second["conversation_id"] != old
        assert await _count(server) == 2


async def test_a_bad_key_is_refused(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        response = await server.client.post(
            "/api/conversations", json={}, headers={"Idempotency-Key": "x" * 300}
        )
        assert response.status_code == 422
        assert await _count(server) == 0
