"""Conversation CRUD, listing, events paging and settings, through real HTTP."""

from __future__ import annotations

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, text_response
from tests.api.conftest import ServeFactory, wait_for


async def test_create_validates_and_reports_missing_llm(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        response = await server.client.post("/api/conversations", json={"bogus": 1})
        assert response.status_code == 422
        assert "Extra inputs are not permitted" in response.text
    async with server_factory(llm_model=None) as server:
        response = await server.client.post("/api/conversations", json={})
        assert response.status_code == 400
        assert response.json()["msg_id"] == "CONFIGURATION$SETTINGS_NOT_FOUND"


async def test_get_patch_delete(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        created = (await server.client.post("/api/conversations", json={})).json()
        cid = created["conversation_id"]
        assert len(cid) == 32 and all(c in "0123456789abcdef" for c in cid)
        assert created["status"] == "ok"

        info = (await server.client.get(f"/api/conversations/{cid}")).json()
        assert info["title"] == f"Conversation {cid[:5]}"
        assert info["status"] in ("STARTING", "RUNNING")
        assert info["url"] == f"/api/conversations/{cid}"
        assert info["trigger"] == "gui"
        assert info["pr_number"] == []
        for key in (
            "last_updated_at",
            "runtime_status",
            "selected_repository",
            "selected_branch",
            "git_provider",
            "num_connections",
            "session_api_key",
            "created_at",
        ):
            assert key in info

        assert (await server.client.get("/api/conversations/0123abcd")).json() is None

        renamed = await server.client.patch(f"/api/conversations/{cid}", json={"title": "  New  "})
        assert renamed.status_code == 200 and renamed.json() is True
        assert (await server.client.get(f"/api/conversations/{cid}")).json()["title"] == "New"
        missing = await server.client.patch("/api/conversations/nope", json={"title": "x"})
        assert missing.status_code == 404
        assert (
            await server.client.patch(f"/api/conversations/{cid}", json={"title": ""})
        ).status_code == 422

        workspace = server.manager.workspace_path(cid)
        await wait_for(workspace.exists)
        assert (await server.client.delete(f"/api/conversations/{cid}")).json() is True
        assert not workspace.exists()
        assert server.manager.running_ids() == []
        assert (await server.client.get(f"/api/conversations/{cid}")).json() is None
        assert (await server.client.delete(f"/api/conversations/{cid}")).json() is False


async def test_list_pages_are_full_and_filtered(server_factory: ServeFactory) -> None:
    async with server_factory(max_concurrent_conversations=10) as server:
        ids = []
        for i in range(5):
            body = {"repository": "acme/app" if i % 2 == 0 else "acme/lib"}
            ids.append(
                (await server.client.post("/api/conversations", json=body)).json()[
                    "conversation_id"
                ]
            )
        page1 = (await server.client.get("/api/conversations", params={"limit": 2})).json()
        assert [r["conversation_id"] for r in page1["results"]] == ids[::-1][:2]
        page2 = (
            await server.client.get(
                "/api/conversations", params={"limit": 2, "page_id": page1["next_page_id"]}
            )
        ).json()
        page3 = (
            await server.client.get(
                "/api/conversations", params={"limit": 2, "page_id": page2["next_page_id"]}
            )
        ).json()
        assert len(page2["results"]) == 2 and len(page3["results"]) == 1
        assert page3["next_page_id"] is None
        # as OpenHands, any limit is accepted (a page holds at most 100, then next_page_id)
        everything = await server.client.get("/api/conversations", params={"limit": 1000})
        assert everything.status_code == 200 and len(everything.json()["results"]) == 5

        filtered = (
            await server.client.get(
                "/api/conversations", params={"limit": 2, "selected_repository": "acme/app"}
            )
        ).json()
        assert len(filtered["results"]) == 2  # filters apply before paging: the page is full
        assert {r["selected_repository"] for r in filtered["results"]} == {"acme/app"}
        none = (
            await server.client.get("/api/conversations", params={"conversation_trigger": "slack"})
        ).json()
        assert none == {"results": [], "next_page_id": None}


async def test_events_paging_and_user_messages(server_factory: ServeFactory) -> None:
    llm = ScriptedLLM([text_response("Hello! What shall I do?")])
    overrides = Overrides(llm_factory=lambda _config: llm)
    async with server_factory(overrides) as server:
        cid = (
            await server.client.post("/api/conversations", json={"initial_user_msg": "hi there"})
        ).json()["conversation_id"]
        url = f"/api/conversations/{cid}/events"

        async def answered() -> bool:
            events = (await server.client.get(url, params={"limit": 100})).json()["events"]
            return any(e.get("source") == "agent" and e.get("action") == "message" for e in events)

        await wait_for(answered)
        events = (await server.client.get(url, params={"limit": 100})).json()["events"]
        assert [e["id"] for e in events] == list(range(len(events)))
        assert events[0]["action"] == "message" and events[0]["source"] == "user"
        assert events[0]["args"]["content"] == "hi there"

        first = (await server.client.get(url, params={"limit": 2})).json()
        assert [e["id"] for e in first["events"]] == [0, 1] and first["has_more"] is True
        window = (await server.client.get(url, params={"start_id": 1, "end_id": 2})).json()
        assert [e["id"] for e in window["events"]] == [1, 2]
        backwards = (await server.client.get(url, params={"reverse": True, "limit": 1})).json()
        assert backwards["events"][0]["id"] == events[-1]["id"]
        for bad in (-1, 101):
            assert (await server.client.get(url, params={"limit": bad})).status_code == 400
        # as OpenHands: limit 0 only says whether there are events; a negative start is 0
        nothing = (await server.client.get(url, params={"limit": 0})).json()
        assert nothing == {"events": [], "has_more": True}
        negative = (await server.client.get(url, params={"start_id": -5, "limit": 1})).json()
        assert [e["id"] for e in negative["events"]] == [0]
        assert (await server.client.get("/api/conversations/nope/events")).status_code == 404

        llm.add(text_response("Second answer"))
        sent = await server.client.post(
            url, json={"action": "message", "args": {"content": "again"}}
        )
        assert sent.status_code == 200 and sent.json()["success"] is True

        async def second() -> bool:
            evs = (await server.client.get(url, params={"limit": 100})).json()["events"]
            return any(e.get("args", {}).get("content") == "Second answer" for e in evs)

        await wait_for(second)
        refused = await server.client.post(url, json={"action": "finish", "args": {}})
        assert refused.status_code == 400


async def test_settings_never_return_the_key(server_factory: ServeFactory) -> None:
    async with server_factory(llm_api_key=None) as server:
        view = (await server.client.get("/api/settings")).json()
        assert view["llm_model"] == "openai/scripted"  # the server default
        assert view["llm_api_key_set"] is False and view["llm_api_key"] is None
        stored = await server.client.post(
            "/api/settings",
            json={"llm_model": "openai/other", "llm_api_key": "sk-secret", "max_iterations": 7},
        )
        assert stored.status_code == 200
        view = (await server.client.get("/api/settings")).json()
        assert view["llm_model"] == "openai/other" and view["max_iterations"] == 7
        assert view["llm_api_key_set"] is True
        assert "sk-secret" not in (await server.client.get("/api/settings")).text
        assert (
            await server.client.post("/api/settings", json={"max_iterations": 0})
        ).status_code == 422

        providers = await server.client.post(
            "/api/add-git-providers",
            json={
                "provider_tokens": {
                    "github": {"token": "ghp_x"},
                    "gitlab": {"token": "glpat", "host": "git.example.test"},
                }
            },
        )
        assert providers.status_code == 200
        view = (await server.client.get("/api/settings")).json()
        assert view["provider_tokens_set"] == {"github": None, "gitlab": "git.example.test"}
        assert "ghp_x" not in str(view)
        bad = await server.client.post(
            "/api/add-git-providers", json={"provider_tokens": {"svn": {"token": "t"}}}
        )
        assert bad.status_code == 422
