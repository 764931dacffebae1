"""The rest of the web client's API: options, user/provider endpoints, secrets, and the
per-conversation trajectory, microagents, config, vscode-url and web-hosts."""

from __future__ import annotations

import socket
from typing import Any

from convo.api.app import Overrides
from convo.domain.conversation import ProviderToken, ProviderType
from convo.domain.events import AgentStateChangedObservation, EventSource, message_action
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.runtime.base import CommandResult
from convo.services.conversations import NewConversation
from tests.api.conftest import RunningServer, ServeFactory, wait_for
from tests.stream.helpers import FakeSandboxFactory

UNKNOWN = "0123456789abcdef0123456789abcdef"


def _overrides(llm: ScriptedLLM | None = None, factory: Any = None) -> Overrides:
    chosen = llm or ScriptedLLM()
    return Overrides(sandbox_factory=factory or FakeSandboxFactory(), llm_factory=lambda _c: chosen)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now


async def test_options(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides(), llm_model="myproxy/house-model") as server:
        models = (await server.client.get("/api/options/models")).json()
        assert "myproxy/house-model" in models and "gpt-4o" in models
        assert models == sorted(models)
        assert (await server.client.get("/api/options/agents")).json() == ["CodeActAgent"]
        analyzers = await server.client.get("/api/options/security-analyzers")
        assert analyzers.json() == []
        config = (await server.client.get("/api/options/config")).json()
        assert config["APP_MODE"] == "oss"
        assert config["FEATURE_FLAGS"]["ENABLE_BILLING"] is False


async def test_options_need_the_key(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides(), session_api_key="k") as server:
        for path in (
            "/api/options/models",
            "/api/options/config",
            "/api/user/info",
            "/api/secrets",
        ):
            assert (await server.client.get(path)).status_code == 401, path


async def test_user_endpoints_without_a_token(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        info = await server.client.get("/api/user/info")
        assert info.status_code == 401 and "token required" in info.json()["detail"]
        for path, params in [
            ("/api/user/repositories", {}),
            ("/api/user/search/repositories", {"query": "convo"}),
            ("/api/user/repository/branches", {"repository": "o/r"}),
            ("/api/user/installations", {}),
            ("/api/user/suggested-tasks", {}),
        ]:
            response = await server.client.get(path, params=params)
            assert response.status_code == 200 and response.json() == [], path
        assert (await server.client.get("/api/user/search/repositories")).status_code == 422
        bad_repo = await server.client.get(
            "/api/user/repository/branches", params={"repository": "../x"}
        )
        assert bad_repo.status_code == 400
        bad_provider = await server.client.get(
            "/api/user/repositories", params={"selected_provider": "nope"}
        )
        assert bad_provider.status_code == 422


async def test_user_endpoints_when_the_provider_is_unreachable(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(_overrides()) as server:
        storage = server.manager.storage
        secrets = await storage.settings.load_secrets(None)
        dead = f"http://127.0.0.1:{_closed_port()}"
        secrets.provider_tokens[ProviderType.GITHUB] = ProviderToken("ghp_x", host=dead)
        secrets.provider_tokens[ProviderType.BITBUCKET] = ProviderToken("bb_x")
        await storage.settings.save_secrets(None, secrets)
        for path, params in [
            ("/api/user/info", {}),
            ("/api/user/repositories", {}),
            ("/api/user/search/repositories", {"query": "convo"}),
            ("/api/user/repository/branches", {"repository": "o/r"}),
            ("/api/user/installations", {}),
        ]:
            response = await server.client.get(path, params=params)
            assert response.status_code == 502, path
            assert "Could not reach github" in response.json()["detail"]
        unsupported = await server.client.get(
            "/api/user/repositories", params={"selected_provider": "bitbucket"}
        )
        assert unsupported.status_code == 400
        assert (await server.client.get("/api/user/suggested-tasks")).json() == []

        unset = await server.client.post("/api/unset-provider-tokens")
        assert unset.status_code == 200
        assert (await storage.settings.load_secrets(None)).provider_tokens == {}
        assert (await server.client.get("/api/user/repositories")).json() == []


async def test_custom_secrets_crud(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        client = server.client
        assert (await client.get("/api/secrets")).json() == {"custom_secrets": []}
        created = await client.post(
            "/api/secrets", json={"name": "API_TOKEN", "value": "v1", "description": "d"}
        )
        assert created.status_code == 201
        again = await client.post("/api/secrets", json={"name": "API_TOKEN", "value": "v2"})
        assert again.status_code == 400
        for bad in ({"name": "bad name", "value": "x"}, {"name": "OK", "value": ""}, {}):
            assert (await client.post("/api/secrets", json=bad)).status_code == 422
        listing = (await client.get("/api/secrets")).json()
        assert listing == {"custom_secrets": [{"name": "API_TOKEN", "description": "d"}]}
        assert "v1" not in str(listing)

        renamed = await client.put(
            "/api/secrets/API_TOKEN", json={"name": "SERVICE_TOKEN", "description": "new"}
        )
        assert renamed.status_code == 200
        stored = await server.manager.storage.settings.load_secrets(None)
        assert stored.custom_secrets["SERVICE_TOKEN"].secret == "v1"  # the value is kept
        missing = await client.put("/api/secrets/NOPE", json={"name": "NOPE"})
        assert missing.status_code == 404
        assert (await client.delete("/api/secrets/SERVICE_TOKEN")).status_code == 200
        assert (await client.delete("/api/secrets/SERVICE_TOKEN")).status_code == 404
        assert (await client.get("/api/secrets")).json() == {"custom_secrets": []}


async def test_custom_secrets_reach_the_shell_and_are_masked(
    server_factory: ServeFactory,
) -> None:
    value = "s3cr3t-value-42"
    factory = FakeSandboxFactory({"echo $DEPLOY_KEY": CommandResult(value, 0, "/workspace")})
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": "echo $DEPLOY_KEY"}),
            tool_response("finish", {"message": f"the key is {value}"}),
        ]
    )
    async with server_factory(_overrides(llm, factory)) as server:
        await server.client.post("/api/secrets", json={"name": "deploy_key", "value": value})
        cid = (
            await server.client.post(
                "/api/conversations", json={"initial_user_msg": "show the key"}
            )
        ).json()["conversation_id"]

        async def finished() -> bool:
            events = await server.manager.storage.events.list(cid)
            return any(
                isinstance(e, AgentStateChangedObservation) and e.agent_state == "finished"
                for e in events
            )

        await wait_for(finished)
        assert factory.specs[0].env["DEPLOY_KEY"] == value  # an environment variable
        events = [e.to_wire() for e in await server.manager.storage.events.list(cid)]
        assert value not in str(events)
        run = next(e for e in events if e.get("observation") == "run")
        assert "<secret_hidden>" in run["content"]


async def _conversation(server: RunningServer) -> str:
    cid: str = await server.manager.create(None, NewConversation())
    return cid


async def test_trajectory_and_extras(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _conversation(server)
        for i in range(3):
            await server.manager.event_log.append(cid, message_action(f"m{i}", EventSource.USER))
        base = f"/api/conversations/{cid}"
        trajectory = (await server.client.get(f"{base}/trajectory")).json()["trajectory"]
        assert [e["id"] for e in trajectory] == [0, 1, 2]
        assert trajectory[1]["args"]["content"] == "m1"
        assert (await server.client.get(f"{base}/vscode-url")).json() == {"vscode_url": None}
        assert (await server.client.get(f"{base}/web-hosts")).json() == {"hosts": {}}
        config = (await server.client.get(f"{base}/config")).json()
        assert config == {"runtime_id": None, "session_id": cid}
        await server.client.post(f"{base}/start", json={})
        await wait_for(lambda: server.manager.status(cid) == "RUNNING")
        config = (await server.client.get(f"{base}/config")).json()
        assert config == {"runtime_id": f"fake-{cid}", "session_id": cid}
        for path in ("trajectory", "vscode-url", "web-hosts", "config", "microagents"):
            unknown = await server.client.get(f"/api/conversations/{UNKNOWN}/{path}")
            assert unknown.status_code == 404, path


async def test_microagents(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _conversation(server)
        url = f"/api/conversations/{cid}/microagents"
        assert (await server.client.get(url)).json() == {"microagents": []}
        folder = server.manager.workspace_path(cid) / ".openhands" / "microagents"
        folder.mkdir(parents=True)
        (folder / "repo.md").write_text("Always run the tests.\n")
        (folder / "docker.md").write_text(
            "---\nname: docker\ntriggers:\n- docker\n- container\n---\nUse compose.\n"
        )
        agents = (await server.client.get(url)).json()["microagents"]
        assert [(a["name"], a["type"], a["triggers"]) for a in agents] == [
            ("docker", "knowledge", ["docker", "container"]),
            ("repo", "repo", []),
        ]
        assert agents[0]["content"].strip() == "Use compose."
