"""The web client's "add to microagent" on an event (``remember-prompt``) and its thumbs
up/down form (``submit-feedback``), replayed over real HTTP."""

from __future__ import annotations

import json
from typing import Any

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, text_response
from tests.api.conftest import RunningServer, ServeFactory, first_events, wait_for
from tests.stream.helpers import FakeSandboxFactory

UNKNOWN = "0123456789abcdef0123456789abcdef"


async def _answered(server: RunningServer, cid: str) -> list[dict[str, Any]]:
    async def done() -> bool:
        return any(
            e.get("action") == "message" and e.get("source") == "agent"
            for e in await first_events(server.client, cid)
        )

    await wait_for(done)
    return await first_events(server.client, cid)


async def test_remember_prompt_asks_the_model_about_the_events_around_one(
    server_factory: ServeFactory,
) -> None:
    llm = ScriptedLLM(
        [
            text_response("Use `make check`; `make test` is gone."),
            text_response(
                "Thinking...\n<update_prompt>\nAdd to the Testing section: run `make check`, "
                "`make test` no longer exists.\n</update_prompt>"
            ),
            text_response("no tags here, just the prompt"),
        ]
    )
    overrides = Overrides(sandbox_factory=FakeSandboxFactory(), llm_factory=lambda _c: llm)
    async with server_factory(overrides) as server:
        created = await server.client.post(
            "/api/conversations", json={"initial_user_msg": "How do I run the tests here?"}
        )
        cid = created.json()["conversation_id"]
        events = await _answered(server, cid)
        answer = next(e for e in events if e.get("source") == "agent" and e.get("action"))

        # hooks/query/use-get-remember-prompt.ts (api/open-hands.ts getMicroagentPrompt)
        url = f"/api/conversations/{cid}/remember-prompt"
        response = await server.client.get(url, params={"event_id": answer["id"]})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "success",
            "prompt": "Add to the Testing section: run `make check`, `make test` no longer exists.",
        }
        asked = llm.requests[-1].messages
        context = asked[0]["content"]
        assert "How do I run the tests here?" in context and "make test` is gone" in context
        assert "agent_state_changed" not in context and "change_agent_state" not in context
        assert asked[-1]["role"] == "user"

        untagged = await server.client.get(url, params={"event_id": 0})
        assert untagged.json()["prompt"] == "no tags here, just the prompt"
        assert (await server.client.get(url)).status_code == 422  # event_id is required
        unknown = f"/api/conversations/{UNKNOWN}/remember-prompt"
        assert (await server.client.get(unknown, params={"event_id": 0})).status_code == 404


async def test_remember_prompt_without_a_model_is_a_400(server_factory: ServeFactory) -> None:
    overrides = Overrides(sandbox_factory=FakeSandboxFactory())
    async with server_factory(overrides, llm_model=None) as server:
        await server.client.post("/api/settings", json={"llm_model": "openai/gpt-4o"})
        cid = (await server.client.post("/api/conversations", json={})).json()["conversation_id"]
        await server.client.post("/api/settings", json={"llm_model": ""})
        response = await server.client.get(
            f"/api/conversations/{cid}/remember-prompt", params={"event_id": 0}
        )
        assert response.status_code == 400, response.text
        assert "No LLM is configured" in response.json()["detail"]


async def test_feedback_is_kept_on_the_server(server_factory: ServeFactory) -> None:
    llm = ScriptedLLM([text_response("Done.")])
    overrides = Overrides(sandbox_factory=FakeSandboxFactory(), llm_factory=lambda _c: llm)
    async with server_factory(overrides) as server:
        created = await server.client.post("/api/conversations", json={"initial_user_msg": "hi"})
        cid = created.json()["conversation_id"]
        events = await _answered(server, cid)
        # components/features/feedback/feedback-form.tsx
        form = {
            "version": "0.53.0",
            "email": "ada@example.org",
            "polarity": "negative",
            "permissions": "private",
            "trajectory": [],
            "token": "",
        }
        url = f"/api/conversations/{cid}/submit-feedback"
        response = await server.client.post(url, json=form)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["statusCode"] == 200
        assert "stored on this convo server" in body["body"]["message"]
        assert body["body"]["password"] == ""

        stored = server.manager.feedback.read(cid)
        assert len(stored) == 1
        assert stored[0]["feedback_id"] == body["body"]["feedback_id"]
        assert stored[0]["polarity"] == "negative" and stored[0]["email"] == "ada@example.org"
        assert stored[0]["last_event_id"] >= max(int(str(e["id"])) for e in events)
        on_disk = server.manager.feedback.path(cid).read_text()
        assert json.loads(on_disk.splitlines()[0]) == stored[0]

        again = await server.client.post(url, json=form | {"polarity": "positive"})
        assert again.json()["body"]["feedback_id"] != body["body"]["feedback_id"]
        assert [f["polarity"] for f in server.manager.feedback.read(cid)] == [
            "negative",
            "positive",
        ]
        bad = await server.client.post(url, json=form | {"polarity": "meh"})
        assert bad.status_code == 422
        unknown = f"/api/conversations/{UNKNOWN}/submit-feedback"
        assert (await server.client.post(unknown, json=form)).status_code == 404
