"""What the OpenHands 0.53 web client sends, replayed over real HTTP and Socket.IO.

Each test sends the client's own request bodies and query strings (from its hooks and
services) and checks what the user would see: the first-run dialog's 404, settings that come
back as saved, the microagent screens, the terminal's commands, reconnects before any event.
"""

from __future__ import annotations

from typing import Any

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM
from tests.api.conftest import ServeFactory
from tests.stream.helpers import FakeSandboxFactory


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
        assert view["mcp_config"] == CLIENT_SAVE["mcp_config"]


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
