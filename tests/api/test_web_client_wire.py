"""What the OpenHands 0.53 web client sends, replayed over real HTTP and Socket.IO.

Each test sends the client's own request bodies and query strings (from its hooks and
services) and checks what the user would see: the first-run dialog's 404, settings that come
back as saved, the microagent screens, the terminal's commands, reconnects before any event.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import uvicorn

from convo.api.app import Overrides
from convo.domain.conversation import ProviderToken, ProviderType
from convo.llm.scripted import ScriptedLLM
from convo.runtime.base import CommandResult
from tests.api.conftest import RunningServer, ServeFactory, wait_for
from tests.api.test_files import _conversation as _files_conversation
from tests.api.test_files import _git
from tests.stream.helpers import FakeSandboxFactory, SocketClient


def _overrides(llm: ScriptedLLM | None = None) -> Overrides:
    chosen = llm or ScriptedLLM()
    return Overrides(sandbox_factory=FakeSandboxFactory(), llm_factory=lambda _c: chosen)


# what hooks/mutation/use-save-settings.ts posts when the user saves the settings screen
CLIENT_SAVE: dict[str, Any] = {
    "llm_model": "openai/gpt-4o",
    "llm_base_url": "",
    "agent": "CodeActAgent",
    "language": "de",
    "confirmation_mode": True,
    "security_analyzer": "",
    "llm_api_key": "sk-user-key-123",
    "remote_runtime_resource_factor": 1,
    "enable_default_condenser": False,
    "condenser_max_size": 240,
    "enable_sound_notifications": True,
    "user_consents_to_analytics": False,
    "provider_tokens_set": {},
    "mcp_config": {
        "sse_servers": ["http://127.0.0.1:9/sse"],
        "stdio_servers": [{"name": "fs", "command": "npx", "args": ["-y", "fs-server"]}],
        "shttp_servers": [],
    },
    "enable_proactive_conversation_starters": False,
    "enable_solvability_analysis": False,
    "search_api_key": "tvly-search-key-456",
    "max_budget_per_task": 2.5,
    "git_user_name": "Ada Lovelace",
    "git_user_email": "ada@example.org",
}


async def test_first_run_settings_are_404_until_saved(server_factory: ServeFactory) -> None:
    """No default model on the server: the client's first-run LLM dialog opens on the 404."""
    async with server_factory(_overrides(), llm_model=None) as server:
        first = await server.client.get("/api/settings")
        assert first.status_code == 404
        assert first.json() == {"error": "Settings not found"}
        # the first-run dialog saves the model and key only
        saved = await server.client.post(
            "/api/settings", json={"llm_model": "openai/gpt-4o", "llm_api_key": "sk-1"}
        )
        assert saved.json() == {"message": "Settings stored"}
        view = await server.client.get("/api/settings")
        assert view.status_code == 200
        assert view.json()["llm_model"] == "openai/gpt-4o"
        assert view.json()["llm_api_key_set"] is True


async def test_a_server_with_a_default_model_answers_its_defaults(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(_overrides()) as server:
        view = await server.client.get("/api/settings")
        assert view.status_code == 200
        assert view.json()["llm_model"] == "openai/scripted"


async def test_every_field_the_client_saves_comes_back(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides(), llm_model=None) as server:
        assert (await server.client.post("/api/settings", json=CLIENT_SAVE)).is_success
        view = (await server.client.get("/api/settings")).json()
        secret_free = {k: v for k, v in CLIENT_SAVE.items() if not k.endswith("api_key")}
        secret_free.pop("provider_tokens_set")
        secret_free.pop("llm_base_url")  # "" means none
        secret_free.pop("mcp_config")  # normalised: below
        for name, value in secret_free.items():
            assert view[name] == value, name
        assert view["llm_api_key"] is None and view["llm_api_key_set"] is True
        assert view["search_api_key"] is None and view["search_api_key_set"] is True
        raw = (await server.client.get("/api/settings")).text
        assert "sk-user-key-123" not in raw and "tvly-search-key-456" not in raw

        # the next save from the screen sends an empty search key: the stored one stays;
        # an empty git identity falls back to the server's
        again = {**CLIENT_SAVE, "search_api_key": "", "git_user_name": "", "language": "fr"}
        assert (await server.client.post("/api/settings", json=again)).is_success
        view = (await server.client.get("/api/settings")).json()
        assert view["search_api_key_set"] is True
        assert view["language"] == "fr"
        assert view["git_user_name"] == "convo-agent"
        assert view["enable_sound_notifications"] is True  # untouched fields stay
        # normalised as OpenHands' Settings model returns it: a bare URL becomes an object
        assert view["mcp_config"] == {
            "sse_servers": [{"url": "http://127.0.0.1:9/sse", "api_key": None}],
            "stdio_servers": [
                {"name": "fs", "command": "npx", "args": ["-y", "fs-server"], "env": {}}
            ],
            "shttp_servers": [],
        }


async def test_unsaved_client_fields_have_openhands_defaults(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        view = (await server.client.get("/api/settings")).json()
        assert view["enable_sound_notifications"] is False
        assert view["enable_proactive_conversation_starters"] is True
        assert view["enable_solvability_analysis"] is True
        assert view["user_consents_to_analytics"] is None
        assert view["mcp_config"] is None
        assert view["search_api_key_set"] is False
        assert view["condenser_max_size"] is None


# --- the socket: the terminal, reconnects, providers ----------------------------------------
async def _create(server: RunningServer, message: str | None = None) -> str:
    body = {"initial_user_msg": message} if message else {}
    response = await server.client.post("/api/conversations", json=body)
    assert response.status_code == 200, response.text
    cid: str = response.json()["conversation_id"]
    return cid


async def _connect(server: RunningServer, query: str) -> SocketClient:
    """Connect with the query string exactly as the web client builds it."""
    client = SocketClient(server.base_url)
    await client.connect_query(query)
    return client


async def test_the_terminal_runs_a_command_over_the_socket(server_factory: ServeFactory) -> None:
    factory = FakeSandboxFactory({"ls -la": CommandResult("total 0\nREADME.md", 0, "/workspace")})
    llm = ScriptedLLM()
    overrides = Overrides(sandbox_factory=factory, llm_factory=lambda _c: llm)
    async with server_factory(overrides) as server:
        cid = await _create(server)
        # before any event the client sends latest_event_id=undefined (hooks: ws-client-provider)
        client = await _connect(server, f"latest_event_id=undefined&conversation_id={cid}")
        try:
            await wait_for(lambda: client.agent_state == "awaiting_user_input")
            assert client.events[0]["id"] == 0  # "undefined" replays from the start
            # services/terminal-service.ts: what the terminal emits for a typed command
            await client.sio.emit(
                "oh_user_action", {"action": "run", "args": {"command": "ls -la"}}
            )
            await wait_for(lambda: any(e.get("action") == "run" for e in client.events))
            run = next(e for e in client.events if e.get("action") == "run")
            assert run["source"] == "user" and run["args"]["command"] == "ls -la"
            await wait_for(lambda: client.answer_to(run["id"]) is not None)
            result = client.answer_to(run["id"])
            assert result is not None and result["observation"] == "run"
            assert "README.md" in result["content"]
            assert result["extras"]["metadata"]["exit_code"] == 0
            assert not any(e.get("error") for e in client.events)
        finally:
            await client.disconnect()
        assert llm.requests == []  # the agent was not asked to act on the user's command


async def test_user_actions_over_http_wait_for_confirmation_as_the_agents_do(
    server_factory: ServeFactory,
) -> None:
    factory = FakeSandboxFactory({"rm -rf build": CommandResult("", 0, "/workspace")})
    overrides = Overrides(sandbox_factory=factory, llm_factory=lambda _c: ScriptedLLM())
    async with server_factory(overrides) as server:
        await server.client.post("/api/settings", json={"confirmation_mode": True})
        cid = await _create(server)
        client = await _connect(server, f"conversation_id={cid}&latest_event_id=-1")
        try:
            await wait_for(lambda: client.agent_state == "awaiting_user_input")
            sent = await server.client.post(
                f"/api/conversations/{cid}/events",
                json={"action": "run", "args": {"command": "rm -rf build"}},
            )
            assert sent.status_code == 200, sent.text
            run_id = sent.json()["id"]
            await wait_for(lambda: client.agent_state == "awaiting_user_confirmation")
            stored = next(e for e in client.events if e.get("id") == run_id)
            assert stored["args"]["confirmation_state"] == "awaiting_confirmation"
            assert client.answer_to(run_id) is None  # not run yet

            await client.sio.emit(
                "oh_user_action",
                {"action": "change_agent_state", "args": {"agent_state": "user_confirmed"}},
            )
            await wait_for(lambda: client.agent_state == "awaiting_user_input")
            confirmed = [
                e
                for e in client.events
                if e.get("action") == "run" and e["args"]["confirmation_state"] == "confirmed"
            ]
            assert len(confirmed) == 1 and confirmed[0]["source"] == "user"
            await wait_for(lambda: client.answer_to(confirmed[0]["id"]) is not None)
            commands = [c.command for s in factory.created for c in s.commands]
            assert commands == ["rm -rf build"]
        finally:
            await client.disconnect()


async def test_read_and_edit_from_a_script(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _create(server)
        client = await _connect(server, f"conversation_id={cid}")
        try:
            await wait_for(lambda: client.agent_state == "awaiting_user_input")
            post = server.client.post
            events = f"/api/conversations/{cid}/events"
            create = {"action": "edit", "args": {"path": "notes.txt", "command": "create",
                                                 "file_text": "first line\n"}}  # fmt: skip
            created = (await post(events, json=create)).json()["id"]
            await wait_for(lambda: client.answer_to(created) is not None)
            read = await post(events, json={"action": "read", "args": {"path": "notes.txt"}})
            read_id = read.json()["id"]
            await wait_for(lambda: client.answer_to(read_id) is not None)
            answer = client.answer_to(read_id)
            assert answer is not None and answer["observation"] == "read"
            assert "first line" in answer["content"]
            files = await server.client.get(f"/api/conversations/{cid}/list-files")
            assert "notes.txt" in files.json()
            for refused in (
                {"action": "write", "args": {"content": "y"}},  # no path
                {"action": "finish", "args": {}},
                {"action": "run", "args": {}},
                {"action": "edit", "args": {"path": "x", "command": "view"}},
            ):
                response = await post(events, json=refused)
                assert response.status_code == 400, refused
        finally:
            await client.disconnect()


async def test_a_run_for_a_conversation_that_is_not_running_is_refused(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _create(server)
        await server.client.post(f"/api/conversations/{cid}/stop")
        response = await server.client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "run", "args": {"command": "ls"}},
        )
        assert response.status_code == 400
        assert "not running" in response.text


async def test_repeated_providers_set_keeps_every_provider(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _create(server)
        await server.client.post(f"/api/conversations/{cid}/stop")  # the socket starts it
        query = f"conversation_id={cid}&providers_set=github&providers_set=gitlab"
        client = await _connect(server, query)
        try:
            metadata = await server.manager.get_metadata(cid)
            assert metadata.providers_set == [ProviderType.GITHUB, ProviderType.GITLAB]
        finally:
            await client.disconnect()


async def test_the_microagent_flag_and_a_missing_directory(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        config = (await server.client.get("/api/options/config")).json()
        assert config["FEATURE_FLAGS"]["HIDE_MICROAGENT_MANAGEMENT"] is True
        cid = await _create(server)
        await wait_for(lambda: _running(server, cid))
        # hooks/query/use-get-microagents.ts lists this directory in every conversation
        listed = await server.client.get(
            f"/api/conversations/{cid}/list-files", params={"path": ".openhands/microagents"}
        )
        assert listed.status_code == 200 and listed.json() == []


async def _running(server: RunningServer, cid: str) -> bool:
    info = (await server.client.get(f"/api/conversations/{cid}")).json()
    return bool(info and info["status"] == "RUNNING")


# --- microagents of a repository, through a fake GitHub API ---------------------------------
FLAKE = "---\nname: flake\ntriggers:\n- flaky\n- retry\n---\nRerun flaky tests once.\n"


class FakeGitHub:
    """The few GitHub REST answers the microagent routes need, on 127.0.0.1."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.files = {
            ".openhands/microagents/flake.md": FLAKE,
            ".openhands/microagents/README.md": "# about\n",
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.paths.append(path)
        status, body = self._answer(path.removeprefix("/repos/o/r/contents/"))
        raw = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})

    def _answer(self, path: str) -> tuple[int, Any]:
        if path == ".openhands/microagents":
            listing = [{"name": p.rsplit("/", 1)[1], "path": p, "type": "file"} for p in self.files]
            return 200, [*listing, {"name": "drafts", "path": f"{path}/drafts", "type": "dir"}]
        if path in self.files:
            encoded = base64.b64encode(self.files[path].encode()).decode()
            return 200, {"path": path, "content": encoded, "encoding": "base64"}
        return 404, {"message": "Not Found"}


async def test_repository_microagents_through_the_provider(server_factory: ServeFactory) -> None:
    github = FakeGitHub()
    config = uvicorn.Config(github, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    api = uvicorn.Server(config)
    api.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(api.serve(), name="fake-github")
    try:
        await wait_for(lambda: api.started)
        host = f"http://127.0.0.1:{api.servers[0].sockets[0].getsockname()[1]}"
        async with server_factory(_overrides()) as server:
            base = "/api/user/repository/o/r/microagents"
            assert (await server.client.get(base)).json() == []  # no token yet
            storage = server.manager.storage
            secrets = await storage.settings.load_secrets(None)
            secrets.provider_tokens[ProviderType.GITHUB] = ProviderToken("ghp_x", host=host)
            await storage.settings.save_secrets(None, secrets)

            listed = (await server.client.get(base)).json()
            assert [(m["name"], m["path"]) for m in listed] == [
                ("flake", ".openhands/microagents/flake.md")
            ]
            assert listed[0]["created_at"]
            content = await server.client.get(
                f"{base}/content", params={"file_path": ".openhands/microagents/flake.md"}
            )
            assert content.status_code == 200
            assert content.json() == {
                "content": FLAKE,
                "path": ".openhands/microagents/flake.md",
                "triggers": ["flaky", "retry"],
                "git_provider": "github",
            }
            missing = await server.client.get(f"{base}/content", params={"file_path": "nope.md"})
            assert missing.status_code == 404
            escape = await server.client.get(
                f"{base}/content", params={"file_path": "../../etc/passwd"}
            )
            assert escape.status_code == 400
    finally:
        api.should_exit = True
        await asyncio.wait_for(task, 10)


# --- the changes panel: against the remote branch, as OpenHands ------------------------------
async def test_git_changes_count_commits_not_pushed(
    server_factory: ServeFactory, tmp_path: Path
) -> None:
    """A commit the agent made but did not push stays in the Changes tab (a diff against
    HEAD emptied it), until it is pushed."""
    origin = tmp_path / "origin.git"
    seed = tmp_path / "seed"
    seed.mkdir()
    await _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    await _git(seed, "init", "-q", "-b", "main")
    (seed / "a.txt").write_text("one\n")
    await _git(seed, "add", ".")
    await _git(seed, "commit", "-q", "-m", "first")
    await _git(seed, "push", "-q", str(origin), "main")
    async with server_factory(Overrides(sandbox_factory=FakeSandboxFactory())) as server:
        cid = await _files_conversation(server, {"README": b"workspace\n"})
        root = server.manager.workspace_path(cid)
        await _git(root, "clone", "-q", str(origin), "proj")
        project = root / "proj"
        (project / "b.txt").write_text("committed, not pushed\n")
        await _git(project, "add", "b.txt")
        await _git(project, "commit", "-q", "-m", "second")
        (project / "a.txt").write_text("two\n")
        (project / "c.txt").write_text("untracked\n")
        base = f"/api/conversations/{cid}"

        changes = (await server.client.get(f"{base}/git/changes")).json()
        assert sorted(changes, key=lambda c: c["path"]) == [
            {"status": "M", "path": "proj/a.txt"},
            {"status": "A", "path": "proj/b.txt"},
            {"status": "A", "path": "proj/c.txt"},
        ]
        diff = await server.client.get(f"{base}/git/diff", params={"path": "proj/b.txt"})
        assert diff.json() == {"original": "", "modified": "committed, not pushed\n"}

        await _git(project, "push", "-q", "origin", "main")
        changes = (await server.client.get(f"{base}/git/changes")).json()
        assert sorted(c["path"] for c in changes) == ["proj/a.txt", "proj/c.txt"]

        # a branch of its own that was never pushed: measured from where it left main
        await _git(project, "checkout", "-q", "-b", "feature")
        await _git(project, "add", "a.txt")
        await _git(project, "commit", "-q", "-m", "on the branch")
        changes = (await server.client.get(f"{base}/git/changes")).json()
        assert sorted(c["path"] for c in changes) == ["proj/a.txt", "proj/c.txt"]
        diff = await server.client.get(f"{base}/git/diff", params={"path": "proj/a.txt"})
        assert diff.json() == {"original": "one\n", "modified": "two\n"}
