"""Recall over a real server, as a client sees it in ``GET /events``: the first message's
workspace context names the secrets the user stored (never their values); a later message
gets its own ``recall`` action, answered with the knowledge microagent it triggers, which
the model reads right after that message."""

from __future__ import annotations

import json

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, text_response
from tests.api.conftest import ServeFactory, first_events, wait_for
from tests.stream.helpers import FakeSandboxFactory

SECRET_VALUE = "s3cr3t-deploy-value-7f2a"


async def test_later_message_recalls_knowledge_and_the_start_names_secrets(
    server_factory: ServeFactory,
) -> None:
    llm = ScriptedLLM([text_response("Hello."), text_response("Deploying.")])
    overrides = Overrides(sandbox_factory=FakeSandboxFactory(), llm_factory=lambda _c: llm)
    async with server_factory(overrides) as server:
        stored = await server.client.post(
            "/api/secrets",
            json={"name": "deploy_key", "value": SECRET_VALUE, "description": "staging key"},
        )
        assert stored.status_code == 201
        created = await server.client.post("/api/conversations", json={"initial_user_msg": "hi"})
        cid = created.json()["conversation_id"]
        await wait_for(lambda: len(llm.requests) == 1)

        folder = server.manager.workspace_path(cid) / ".openhands" / "microagents"
        folder.mkdir(parents=True)
        (folder / "deploy.md").write_text(
            "---\nname: deploy\ntriggers:\n  - deploy\n---\nDeploy with `make ship`.\n"
        )
        sent = await server.client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "message", "args": {"content": "now deploy it"}},
        )
        assert sent.status_code == 200

        async def replied() -> bool:
            return any(
                e.get("args", {}).get("content") == "Deploying."
                for e in await first_events(server.client, cid)
            )

        await wait_for(replied)
        events = await first_events(server.client, cid)

        workspace = next(e for e in events if e.get("observation") == "recall")
        assert workspace["extras"]["recall_type"] == "workspace_context"
        assert workspace["extras"]["custom_secrets_descriptions"] == {"DEPLOY_KEY": "staging key"}
        assert workspace["extras"]["runtime_hosts"] == {}

        message = next(e for e in events if e.get("args", {}).get("content") == "now deploy it")
        after = [e for e in events if e["id"] > message["id"]]
        action, answer = [e for e in after if e.get("observation") != "agent_state_changed"][:2]
        assert (action["source"], action["action"]) == ("user", "recall")
        assert action["args"] == {
            "recall_type": "knowledge",
            "query": "now deploy it",
            "thought": "",
        }
        assert action["message"] == "Retrieving content for: now deploy it"
        assert (answer["source"], answer["observation"], answer["cause"]) == (
            "environment",
            "recall",
            action["id"],
        )
        assert answer["extras"]["microagent_knowledge"] == [
            {"name": "deploy", "trigger": "deploy", "content": "Deploy with `make ship`.\n"}
        ]

        messages = llm.requests[1].messages
        assert "$DEPLOY_KEY: staging key" in messages[0]["content"]
        assert messages[-2]["content"] == "now deploy it"
        assert "Deploy with `make ship`." in messages[-1]["content"]
        assert SECRET_VALUE not in json.dumps(events)
        assert SECRET_VALUE not in json.dumps([r.messages for r in llm.requests])
