"""Secrets through real HTTP: names that change how programs start are refused, stored ones
are withheld with a warning, values are sealed at rest, the data dir is private, and the
first message of a conversation is stored masked."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from convo.domain.conversation import CustomSecret, ProviderToken, ProviderType, UserSecrets
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.storage import open_storage
from convo.storage.at_rest import new_key
from tests.api.conftest import RunningServer, wait_for
from tests.security.conftest import ServerFactory


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _stored_bytes(data_dir: Path) -> bytes:
    """Everything SQLite keeps on disk for the database: the file, its WAL, its journal."""
    return b"".join(p.read_bytes() for p in data_dir.glob("convo.db*") if p.is_file())


async def _events(server: RunningServer, cid: str) -> list[dict[str, Any]]:
    response = await server.client.get(f"/api/conversations/{cid}/events", params={"limit": 100})
    assert response.status_code == 200
    events: list[dict[str, Any]] = response.json()["events"]
    return events


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "ld_preload",  # upper-cased in the environment
        "LD_LIBRARY_PATH",
        "BASH_ENV",
        "ENV",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PERL5OPT",
        "NODE_OPTIONS",
        "GIT_CONFIG_COUNT",
        "GIT_SSH_COMMAND",
        "PATH",
        "HOME",
        "IFS",
        "PROMPT_COMMAND",
        "SHELLOPTS",
    ],
)
async def test_a_name_that_changes_how_programs_start_is_refused(
    server_factory: ServerFactory, name: str
) -> None:
    async with server_factory() as server:
        response = await server.client.post("/api/secrets", json={"name": name, "value": "x"})
        assert response.status_code == 422
        detail = response.json()["detail"]  # FastAPI's (and OpenHands') validation shape
        assert detail[0]["loc"] == ["body", "name"]
        assert "load or start" in detail[0]["msg"]
        assert (await server.client.get("/api/secrets")).json() == {"custom_secrets": []}


async def test_ordinary_names_are_kept_and_renaming_to_a_refused_name_is_refused(
    server_factory: ServerFactory,
) -> None:
    async with server_factory() as server:
        client = server.client
        for name in ("GITHUB_TOKEN", "OPENAI_API_KEY", "PIP_INDEX_URL", "deploy_key"):
            created = await client.post("/api/secrets", json={"name": name, "value": "v"})
            assert created.status_code == 201, created.text
        renamed = await client.put("/api/secrets/deploy_key", json={"name": "LD_AUDIT"})
        assert renamed.status_code == 422
        names = [s["name"] for s in (await client.get("/api/secrets")).json()["custom_secrets"]]
        assert names == ["GITHUB_TOKEN", "OPENAI_API_KEY", "PIP_INDEX_URL", "deploy_key"]


async def test_a_value_with_nul_is_refused(server_factory: ServerFactory) -> None:
    async with server_factory() as server:
        client = server.client
        created = await client.post("/api/secrets", json={"name": "TOKEN", "value": "a\u0000b"})
        assert created.status_code == 422
        assert (await client.post("/api/secrets", json={"name": "TOKEN", "value": "ab"})).is_success
        updated = await client.put("/api/secrets/TOKEN", json={"name": "TOKEN", "value": "\x00"})
        assert updated.status_code == 422
        assert (await client.get("/alive")).status_code == 200


async def test_stored_refused_secrets_are_withheld_with_a_warning_and_the_start_goes_on(
    server_factory: ServerFactory,
) -> None:
    """Secrets stored before the rules existed: the conversation starts without them."""
    command = 'echo "preload=[${LD_PRELOAD:-}] nul=[${BROKEN:-}] good=[${GOOD:-}]"'
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": command}),
            tool_response("finish", {"message": "done"}),
        ]
    )
    async with server_factory(llm) as server:
        planted = UserSecrets(
            custom_secrets={
                "LD_PRELOAD": CustomSecret("/tmp/evil-library.so"),
                "BROKEN": CustomSecret("before\0after"),
                "GOOD": CustomSecret("plain-value"),
            }
        )
        await server.manager.storage.settings.save_secrets(None, planted)
        created = await server.client.post(
            "/api/conversations", json={"initial_user_msg": "print the variables"}
        )
        assert created.status_code == 200
        cid = created.json()["conversation_id"]

        async def finished() -> bool:
            return any(
                e.get("extras", {}).get("agent_state") == "finished"
                for e in await _events(server, cid)
            )

        await wait_for(finished, timeout=30)
        events = await _events(server, cid)
        warnings = [
            e["content"]
            for e in events
            if e.get("extras", {}).get("error_id") == "STATUS$SECRET_WITHHELD"
        ]
        assert len(warnings) == 2
        assert any("LD_PRELOAD" in w and "load or start" in w for w in warnings)
        assert any("BROKEN" in w and "NUL" in w for w in warnings)
        run = next(e for e in events if e.get("observation") == "run")
        # the good secret arrives (masked in the event), the refused ones do not
        assert "preload=[] nul=[] good=[<secret_hidden>]" in run["content"]
        assert "/tmp/evil-library.so" not in str(events)
        # a refused secret can still be deleted
        assert (await server.client.delete("/api/secrets/LD_PRELOAD")).status_code == 200


async def test_secrets_are_sealed_at_rest_in_a_private_data_dir(
    server_factory: ServerFactory, data_dir: Path
) -> None:
    secret, token, llm_key = "custom-secret-0f3a9c", "ghp_token_71be02d4", "sk-user-llm-key-55e1"
    async with server_factory() as server:
        client = server.client
        assert (await client.post("/api/secrets", json={"name": "K", "value": secret})).is_success
        providers = {"provider_tokens": {"github": {"token": token}}}
        assert (await client.post("/api/add-git-providers", json=providers)).is_success
        assert (await client.post("/api/settings", json={"llm_api_key": llm_key})).is_success

        on_disk = _stored_bytes(data_dir)
        assert b"custom_secrets" not in on_disk  # the secrets document is one sealed token
        for value in (secret, token, llm_key):
            assert value.encode() not in on_disk
        assert stat.S_IMODE((data_dir / "secrets.key").stat().st_mode) == 0o600
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((data_dir / "convo.db").stat().st_mode) == 0o600

    async with server_factory() as server:  # a restart opens them with the key file
        stored = await server.manager.storage.settings.load_secrets(None)
        assert stored.custom_secrets["K"].secret == secret
        assert stored.provider_tokens[ProviderType.GITHUB].token == token
        settings = await server.manager.storage.settings.load_settings(None)
        assert settings is not None
        assert settings.llm_api_key == llm_key
        assert (await server.client.get("/api/settings")).json()["llm_api_key_set"] is True


async def test_plaintext_rows_of_an_older_version_are_sealed_at_start(
    server_factory: ServerFactory, data_dir: Path
) -> None:
    value = "legacy-plaintext-8d41e7"
    data_dir.mkdir(mode=0o755)
    (data_dir / "convo.db").touch(mode=0o644)
    legacy = open_storage(f"sqlite+aiosqlite:///{data_dir / 'convo.db'}")  # no sealer
    await legacy.migrate()
    await legacy.settings.save_secrets(
        None,
        UserSecrets(
            provider_tokens={ProviderType.GITLAB: ProviderToken(value + "-token")},
            custom_secrets={"OLD": CustomSecret(value)},
        ),
    )
    await legacy.aclose()
    assert value.encode() in _stored_bytes(data_dir)

    async with server_factory() as server:
        stored = await server.manager.storage.settings.load_secrets(None)
        assert stored.custom_secrets["OLD"].secret == value
        assert stored.provider_tokens[ProviderType.GITLAB].token == value + "-token"
        assert value.encode() not in _stored_bytes(data_dir)
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((data_dir / "convo.db").stat().st_mode) == 0o600


async def test_the_environment_key_seals_and_a_wrong_key_fails_clearly(
    server_factory: ServerFactory, data_dir: Path
) -> None:
    key = new_key()
    async with server_factory(secrets_key=key) as server:
        assert (
            await server.client.post("/api/secrets", json={"name": "A", "value": "v1"})
        ).is_success
    assert not (data_dir / "secrets.key").exists()  # the environment's key needs no file

    async with server_factory(secrets_key=key) as server:
        assert (await server.client.get("/api/secrets")).json()["custom_secrets"] == [
            {"name": "A", "description": ""}
        ]
    async with server_factory(secrets_key=new_key()) as server:
        response = await server.client.get("/api/secrets")
        assert response.status_code == 503
        assert "cannot be opened with this key" in response.json()["detail"]


async def test_the_first_message_is_stored_masked(
    server_factory: ServerFactory, data_dir: Path
) -> None:
    secret, token = "first-message-secret-9b2f", "ghp_first_message_token_11"
    async with server_factory() as server:
        client = server.client
        await client.post("/api/secrets", json={"name": "DEPLOY", "value": secret})
        await client.post(
            "/api/add-git-providers", json={"provider_tokens": {"github": {"token": token}}}
        )
        created = await client.post(
            "/api/conversations",
            json={"initial_user_msg": f"deploy with {secret} and push with {token}"},
        )
        cid = created.json()["conversation_id"]
        events = await _events(server, cid)
        first = events[0]
        assert first["source"] == "user" and first["action"] == "message"
        assert first["args"]["content"] == (
            "deploy with <secret_hidden> and push with <secret_hidden>"
        )
        info = (await client.get(f"/api/conversations/{cid}")).json()
        assert secret not in info["title"] and token not in info["title"]
        await server.manager.stop(cid)
        # a message sent while no loop runs is masked too
        sent = await client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "message", "args": {"content": f"again {secret}"}},
        )
        assert sent.status_code == 200, sent.text
        assert secret not in str(await _events(server, cid))
        on_disk = _stored_bytes(data_dir)
        assert secret.encode() not in on_disk and token.encode() not in on_disk
