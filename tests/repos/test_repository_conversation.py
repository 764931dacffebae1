"""A conversation with a repository, through the real HTTP server: the workspace is cloned
and set up before RUNNING, the repository's instructions reach the LLM, knowledge
microagents are recalled on their trigger, and the token never shows."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from convo.api.app import Overrides
from convo.domain.conversation import ProviderToken, ProviderType, UserSecrets
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from tests.api.conftest import RunningServer, make_settings, serve, wait_for
from tests.repos.conftest import TOKEN
from tests.repos.gitserver import GitServer, git


@asynccontextmanager
async def _server(
    tmp_path: Path, llm: ScriptedLLM, git_server: GitServer, token: str
) -> AsyncIterator[RunningServer]:
    overrides = Overrides(llm_factory=lambda _config: llm)
    async with serve(make_settings(tmp_path), overrides) as server:
        secrets = UserSecrets(
            provider_tokens={
                ProviderType.GITHUB: ProviderToken(token=token, host=git_server.base_url)
            }
        )
        await server.manager.storage.settings.save_secrets(None, secrets)
        yield server


async def _events(server: RunningServer, cid: str) -> list[dict[str, Any]]:
    page = await server.client.get(f"/api/conversations/{cid}/events", params={"limit": 100})
    events: list[dict[str, Any]] = page.json()["events"]
    return events


def _states(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["extras"]["agent_state"] for e in events if e.get("observation") == "agent_state_changed"
    ]


async def test_clone_checkout_setup_instructions_and_recall(
    tmp_path: Path, git_server: GitServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="convo")
    push = "cd repo && git commit -qm w --allow-empty && git push -q origin HEAD:refs/heads/x"
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": push}),
            text_response("Pushed."),
            text_response("Deploying is documented."),
        ]
    )
    async with _server(tmp_path, llm, git_server, TOKEN) as server:
        created = await server.client.post(
            "/api/conversations",
            json={
                "initial_user_msg": "Commit and push, please.",
                "repository": "owner/repo",
                "selected_branch": "feature",
                "git_provider": "github",
            },
        )
        cid = created.json()["conversation_id"]

        async def waiting(count: int) -> bool:
            return _states(await _events(server, cid)).count("awaiting_user_input") >= count

        await wait_for(lambda: waiting(1), timeout=30)
        repo = server.manager.workspace_path(cid) / "repo"
        assert (repo / "feature.txt").read_text() == "new\n"
        assert git(repo, "branch", "--show-current", home=tmp_path).strip() == "feature"
        assert (repo / "setup-ran.marker").exists()
        config = (repo / ".git" / "config").read_text()
        assert TOKEN not in config
        assert f"url = {git_server.base_url}/owner/repo.git" in config
        assert "name = convo-agent" in config

        events = await _events(server, cid)
        setup = [
            e for e in events if e.get("observation") == "run" and e["source"] == "environment"
        ]
        assert any("SETUP-OUTPUT" in e["content"] for e in setup)
        clone = next(e for e in events if e.get("action") == "run")
        assert clone["args"]["command"].startswith(
            f"git clone {git_server.base_url}/owner/repo.git"
        )
        # the clone and setup came before the agent ran
        first_running = next(
            i for i, e in enumerate(events) if e.get("extras", {}).get("agent_state") == "running"
        )
        assert events.index(clone) < first_running
        pushed = [e for e in events if e.get("observation") == "run" and e["source"] == "agent"]
        assert pushed[0]["extras"]["metadata"]["exit_code"] == 0, pushed[0]["content"]
        refs = git(
            tmp_path, "ls-remote", str(git_server.project_root / "owner/repo.git"), home=tmp_path
        )
        assert "refs/heads/x" in refs

        system = llm.requests[0].messages[0]["content"]
        assert "Run `make check` before every commit." in system  # AGENTS.md
        assert "The code lives in src/." in system  # repo.md
        assert f"{repo}" in system and "branch feature" in system
        assert "make release" not in json.dumps(llm.requests[0].messages)

        # a message naming a knowledge microagent's trigger recalls it
        await server.client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "message", "args": {"content": "How do I deploy this?"}},
        )
        await wait_for(lambda: waiting(2), timeout=30)
        last = llm.requests[-1].messages
        assert "Deploy with `make release`." in last[-1]["content"]
        assert last[-2]["content"] == "How do I deploy this?"
        stored = await _events(server, cid)
        recalls = [
            e
            for e in stored
            if e.get("observation") == "recall" and e["extras"]["recall_type"] == "knowledge"
        ]
        assert [k["name"] for k in recalls[0]["extras"]["microagent_knowledge"]] == ["deploy"]
        asked = next(e for e in stored if e["id"] == recalls[0]["cause"])  # as OpenHands
        assert (asked["source"], asked["action"], asked["args"]["recall_type"]) == (
            "user",
            "recall",
            "knowledge",
        )
        assert asked["args"]["query"] == "How do I deploy this?"

        everything = json.dumps(await _events(server, cid))
        trajectory = (await server.client.get(f"/api/conversations/{cid}/trajectory")).text
    assert TOKEN not in everything and TOKEN not in trajectory
    ours = [r for r in caplog.records if r.name.startswith("convo")]
    assert all(TOKEN not in record.getMessage() for record in ours)


async def test_a_wrong_token_is_refused_at_create(tmp_path: Path, git_server: GitServer) -> None:
    """As OpenHands: the provider is asked at create; a repository the token cannot read,
    or one that does not exist, is a 400 and no conversation is made."""
    wrong = "ghp_Wrong999999999999"
    llm = ScriptedLLM()
    async with _server(tmp_path, llm, git_server, wrong) as server:
        for repository in ("owner/repo", "owner/missing"):
            created = await server.client.post(
                "/api/conversations", json={"initial_user_msg": "hi", "repository": repository}
            )
            assert created.status_code == 400, created.text
            body = created.json()
            assert body["status"] == "error"
            assert body["msg_id"] == "STATUS$GIT_PROVIDER_AUTHENTICATION_ERROR"
            assert repository in body["message"] and wrong not in created.text
        assert (await server.client.get("/api/conversations")).json()["results"] == []
        assert git_server.api_requests == ["/repos/owner/repo", "/repos/owner/missing"]
    assert llm.requests == []


async def test_a_token_that_cannot_clone_fails_the_start_clearly(
    tmp_path: Path, git_server: GitServer
) -> None:
    wrong = "ghp_Wrong999999999999"
    git_server.api_accepts_any_token = True  # it may read the repository, not clone it
    llm = ScriptedLLM()
    async with _server(tmp_path, llm, git_server, wrong) as server:
        created = await server.client.post(
            "/api/conversations", json={"initial_user_msg": "hi", "repository": "owner/repo"}
        )
        cid = created.json()["conversation_id"]

        async def errored() -> bool:
            return "error" in _states(await _events(server, cid))

        await wait_for(errored, timeout=30)

        async def stopped() -> bool:
            info = (await server.client.get(f"/api/conversations/{cid}")).json()
            return bool(info["status"] == "STOPPED")

        await wait_for(stopped, timeout=10)
        events = await _events(server, cid)
        error = next(e for e in events if e.get("observation") == "error")
        assert "authentication failed" in error["content"]
        assert "owner/repo" in error["content"]
        assert error["extras"]["error_id"].startswith("STATUS$")
        assert wrong not in json.dumps(events)
        assert llm.requests == []  # the agent never ran
        assert git_server.refused >= 1
