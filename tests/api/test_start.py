"""POST /api/conversations/{id}/start: the seed's wire contract, idempotence and failures."""

from __future__ import annotations

import asyncio
from typing import Any

from convo.api.app import Overrides
from convo.domain.conversation import UserSecrets
from convo.errors import StorageError
from convo.runtime.base import Sandbox, SandboxSpec
from convo.runtime.process import ProcessSandboxFactory
from convo.storage.memory import MemoryStorage
from tests.api.conftest import ServeFactory, wait_for


class CountingFactory:
    """The real process sandbox, counting how many were made."""

    name = "process"

    def __init__(self) -> None:
        self.inner = ProcessSandboxFactory()
        self.created: list[str] = []

    def create(self, spec: SandboxSpec) -> Sandbox:
        self.created.append(spec.conversation_id)
        return self.inner.create(spec)


async def _create(client: Any) -> str:
    response = await client.post("/api/conversations", json={})
    assert response.status_code == 200, response.text
    return str(response.json()["conversation_id"])


async def test_start_returns_ok_then_running_and_starts_nothing_more(
    server_factory: ServeFactory,
) -> None:
    factory = CountingFactory()
    async with server_factory(Overrides(sandbox_factory=factory)) as server:
        cid = await _create(server.client)
        await wait_for(lambda: server.manager.status(cid).value == "RUNNING")
        await server.client.post(f"/api/conversations/{cid}/stop")
        response = await server.client.post(f"/api/conversations/{cid}/start", json={})
        assert response.status_code == 200
        body = response.json()
        assert body == {
            "status": "ok",
            "conversation_id": cid,
            "message": None,
            "conversation_status": body["conversation_status"],
        }
        assert body["conversation_status"] in ("STARTING", "RUNNING")

        async def running() -> bool:
            r = await server.client.post(f"/api/conversations/{cid}/start", json={})
            return bool(r.json()["conversation_status"] == "RUNNING")

        await wait_for(running)
        assert factory.created == [cid, cid]  # the loop made at create, then the restart


async def test_fifty_concurrent_starts_make_exactly_one_loop(server_factory: ServeFactory) -> None:
    factory = CountingFactory()
    async with server_factory(Overrides(sandbox_factory=factory)) as server:
        cid = await _create(server.client)
        stopped = await server.client.post(f"/api/conversations/{cid}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["conversation_status"] == "STOPPED"
        assert server.manager.running_ids() == []
        factory.created.clear()
        responses = await asyncio.gather(
            *(server.client.post(f"/api/conversations/{cid}/start", json={}) for _ in range(50))
        )
        assert {r.status_code for r in responses} == {200}
        assert {r.json()["conversation_status"] for r in responses} <= {"STARTING", "RUNNING"}
        await wait_for(lambda: server.manager.status(cid).value == "RUNNING")
        assert factory.created == [cid]
        assert server.manager.running_ids() == [cid]
        events = (
            await server.client.get(f"/api/conversations/{cid}/events", params={"limit": 100})
        ).json()["events"]
        loading = [e for e in events if e.get("extras", {}).get("agent_state") == "loading"]
        assert len(loading) == 2  # create's loop and the one restart


async def test_unknown_conversation_is_404_with_the_contract_body(
    server_factory: ServeFactory,
) -> None:
    async with server_factory() as server:
        response = await server.client.post("/api/conversations/abc123/start", json={})
        assert response.status_code == 404
        assert response.json() == {"status": "error", "conversation_id": "abc123"}


async def test_bad_bodies_are_422_validation_errors(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        cid = await _create(server.client)
        url = f"/api/conversations/{cid}/start"
        cases = [
            await server.client.post(url, json={"providers_set": ["sourceforge"]}),
            await server.client.post(
                url, content=b"{not json", headers={"content-type": "application/json"}
            ),
            await server.client.post(url),
            await server.client.post(url, json={"providers_set": "github"}),
        ]
        for response in cases:
            assert response.status_code == 422, response.text
            detail = response.json()["detail"]
            assert isinstance(detail, list) and detail
            assert {"loc", "msg", "type"} <= set(detail[0])


async def test_accepts_every_provider_and_null(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        cid = await _create(server.client)
        url = f"/api/conversations/{cid}/start"
        for body in (
            {"providers_set": None},
            {"providers_set": ["github", "gitlab", "bitbucket", "enterprise_sso"]},
        ):
            response = await server.client.post(url, json=body)
            assert response.status_code == 200
            assert response.json()["status"] == "ok"


async def test_unsafe_ids_are_refused_before_storage(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        for bad in ("a" * 65, "..%2F..%2Fetc", "a.b", "x%20y"):
            response = await server.client.post(f"/api/conversations/{bad}/start", json={})
            assert response.status_code in (404, 422), (bad, response.status_code)
        # nothing was created for any of them: no conversation, no workspace
        assert (await server.client.get("/api/conversations")).json()["results"] == []
        workspaces = server.app.state.settings.resolved_workspaces_dir()
        assert not workspaces.exists() or list(workspaces.iterdir()) == []


class FailingSecretsStorage(MemoryStorage):
    """Storage whose secrets table is down: starting must fail loudly, not hang."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False
        original = self.settings.load_secrets

        async def load_secrets(user_id: str | None) -> UserSecrets:
            if self.fail:
                raise StorageError("secrets table unavailable")
            return await original(user_id)

        self.settings.load_secrets = load_secrets  # type: ignore[method-assign]


async def test_a_failing_start_is_500_with_message(server_factory: ServeFactory) -> None:
    storage = FailingSecretsStorage()
    async with server_factory(Overrides(storage=storage)) as server:
        cid = await _create(server.client)
        await server.client.post(f"/api/conversations/{cid}/stop")
        storage.fail = True
        response = await server.client.post(f"/api/conversations/{cid}/start", json={})
        assert response.status_code == 500
        body = response.json()
        assert body["status"] == "error"
        assert body["conversation_id"] == cid
        assert body["message"] == "Failed to start conversation: secrets table unavailable"
        storage.fail = False
        info = (await server.client.get(f"/api/conversations/{cid}")).json()
        assert info["status"] == "STOPPED"
