"""What the OpenHands 0.53 web client sends to create conversations and pick repositories,
replayed over real HTTP against a fake GitHub API on 127.0.0.1: a suggested task's card, the
microagent screen's "add microagent", a repository the token cannot read, and the
repository picker's pages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from convo.api.app import Overrides
from convo.domain.conversation import ProviderToken, ProviderType
from convo.llm.scripted import ScriptedLLM
from tests.api.conftest import RunningServer, ServeFactory, wait_for
from tests.stream.helpers import FakeSandboxFactory

TOKEN = "ghp_picker_token_1234"


class FakeGitHub:
    """``/user/repos`` in pages of ``per_page`` with GitHub's Link header, and
    ``/repos/{owner}/{name}`` for the repositories the token may read."""

    def __init__(self, repositories: list[str]) -> None:
        self.repositories = repositories
        self.base = ""
        self.seen: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path, query = scope["path"], parse_qs(scope["query_string"].decode())
        self.seen.append(path)
        headers = [(b"content-type", b"application/json")]
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if auth != f"Bearer {TOKEN}":
            status, body = 401, {"message": "Bad credentials"}
        elif path == "/user/repos":
            page, per_page = int(query["page"][0]), int(query["per_page"][0])
            chunk = self.repositories[(page - 1) * per_page : page * per_page]
            body = [self._repo(i, name) for i, name in enumerate(chunk)]
            status = 200
            if page * per_page < len(self.repositories):
                url = f"{self.base}/user/repos?sort=pushed&page={page + 1}&per_page={per_page}"
                link = f'<{url}>; rel="next", <{self.base}/user/repos?page=9>; rel="last"'
                headers.append((b"link", link.encode()))
        elif path.removeprefix("/repos/") in self.repositories:
            status, body = 200, self._repo(0, path.removeprefix("/repos/"))
        else:
            status, body = 404, {"message": "Not Found"}
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    @staticmethod
    def _repo(index: int, name: str) -> dict[str, Any]:
        return {"id": index, "full_name": name, "private": False, "default_branch": "main"}


@asynccontextmanager
async def _github(repositories: list[str]) -> AsyncIterator[FakeGitHub]:
    app = FakeGitHub(repositories)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    api = uvicorn.Server(config)
    api.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(api.serve(), name="fake-github")
    try:
        await wait_for(lambda: api.started)
        app.base = f"http://127.0.0.1:{api.servers[0].sockets[0].getsockname()[1]}"
        yield app
    finally:
        api.should_exit = True
        await asyncio.wait_for(task, 10)


async def _with_token(server: RunningServer, host: str) -> None:
    storage = server.manager.storage
    secrets = await storage.settings.load_secrets(None)
    secrets.provider_tokens[ProviderType.GITHUB] = ProviderToken(TOKEN, host=host)
    await storage.settings.save_secrets(None, secrets)


def _overrides() -> Overrides:
    llm = ScriptedLLM()
    return Overrides(sandbox_factory=FakeSandboxFactory(), llm_factory=lambda _c: llm)


async def _first_message(server: RunningServer, cid: str) -> str:
    page = await server.client.get(f"/api/conversations/{cid}/events")
    first = page.json()["events"][0]
    assert first["action"] == "message" and first["source"] == "user"
    return str(first["args"]["content"])


async def test_the_repository_picker_pages_with_link_header(server_factory: ServeFactory) -> None:
    names = [f"acme/repo{i}" for i in range(5)]
    async with _github(names) as github, server_factory(_overrides()) as server:
        await _with_token(server, github.base)
        # api/open-hands.ts retrieveUserGitRepositories: page 1, then the Link's next page
        url = "/api/user/repositories"
        first = await server.client.get(url, params={"sort": "pushed", "page": 1, "per_page": 2})
        repos = first.json()
        assert [r["full_name"] for r in repos] == ["acme/repo0", "acme/repo1"]
        link = repos[0]["link_header"]
        assert 'rel="next"' in link and "page=2" in link
        assert all(r["link_header"] == link for r in repos)
        last = await server.client.get(url, params={"sort": "pushed", "page": 3, "per_page": 2})
        assert [r["full_name"] for r in last.json()] == ["acme/repo4"]
        assert last.json()[0]["link_header"] == ""  # no next page


async def test_a_suggested_task_starts_with_its_prompt(server_factory: ServeFactory) -> None:
    async with _github(["acme/app"]) as github, server_factory(_overrides()) as server:
        await _with_token(server, github.base)
        # components/features/home/tasks/task-card.tsx: the card's task, as listed
        task = {
            "git_provider": "github",
            "task_type": "FAILING_CHECKS",
            "repo": "acme/app",
            "issue_number": 42,
            "title": "Fix the flaky build",
        }
        body = {"repository": "acme/app", "git_provider": "github", "suggested_task": task}
        created = await server.client.post("/api/conversations", json=body)
        assert created.status_code == 200, created.text
        cid = created.json()["conversation_id"]
        prompt = await _first_message(server, cid)
        assert "pull request #42" in prompt and "acme/app" in prompt
        assert "GitHub Actions" in prompt and "$GITHUB_TOKEN" in prompt
        assert "{" not in prompt  # the task's text, not its dict
        info = (await server.client.get(f"/api/conversations/{cid}")).json()
        assert info["trigger"] == "suggested_task"

        issue = task | {"task_type": "OPEN_ISSUE", "issue_number": 7}
        created = await server.client.post("/api/conversations", json={"suggested_task": issue})
        prompt = await _first_message(server, created.json()["conversation_id"])
        assert "issue #7" in prompt and "pull request that references it" in prompt
        bad = task | {"task_type": "NOT_A_TASK"}
        refused = await server.client.post("/api/conversations", json={"suggested_task": bad})
        assert refused.status_code == 422


async def test_create_microagent_uses_its_repository(server_factory: ServeFactory) -> None:
    async with _github(["acme/app"]) as github, server_factory(_overrides()) as server:
        await _with_token(server, github.base)
        # the microagent management screen: no repository of its own, create_microagent's
        body = {
            "initial_user_msg": "Write a microagent about our release process",
            "create_microagent": {"repo": "acme/app", "git_provider": "github", "title": "rel"},
        }
        created = await server.client.post("/api/conversations", json=body)
        assert created.status_code == 200, created.text
        cid = created.json()["conversation_id"]
        info = (await server.client.get(f"/api/conversations/{cid}")).json()
        assert info["selected_repository"] == "acme/app"
        assert info["git_provider"] == "github"
        assert info["trigger"] == "microagent_management"
        assert "/repos/acme/app" in github.seen  # checked with the provider first


async def test_a_bad_repository_is_a_400_at_create(server_factory: ServeFactory) -> None:
    async with _github(["acme/app"]) as github, server_factory(_overrides()) as server:
        for name in ("acme/../etc", "no-owner"):  # malformed: no token needed to tell
            response = await server.client.post("/api/conversations", json={"repository": name})
            assert response.status_code == 400, name
        await _with_token(server, github.base)
        missing = await server.client.post(
            "/api/conversations", json={"repository": "acme/gone", "initial_user_msg": "hi"}
        )
        assert missing.status_code == 400
        assert missing.json()["msg_id"] == "STATUS$GIT_PROVIDER_AUTHENTICATION_ERROR"
        assert "acme/gone" in missing.json()["message"] and TOKEN not in missing.text
        listed = (await server.client.get("/api/conversations")).json()
        assert listed["results"] == []  # nothing was made

        # no git_provider given: the provider whose token reads it is taken
        found = await server.client.post("/api/conversations", json={"repository": "acme/app"})
        cid = found.json()["conversation_id"]
        info = (await server.client.get(f"/api/conversations/{cid}")).json()
        assert info["git_provider"] == "github"
