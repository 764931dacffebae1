"""Secrets sealed at rest, on SQLite and PostgreSQL: what the tables hold is not the value,
the same key opens it after a reopen, another key fails clearly, plain rows are sealed at
migrate."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from convo.domain.conversation import (
    CustomSecret,
    ProviderToken,
    ProviderType,
    UserSecrets,
    UserSettings,
)
from convo.errors import StorageError
from convo.storage import open_storage
from convo.storage.at_rest import Sealer, load_sealer, new_key
from convo.storage.schema import user_secrets, user_settings
from convo.storage.sql import SqlStorage

SECRET, TOKEN, LLM_KEY = "sealed-custom-value-4c1d", "sealed-token-9e7a", "sealed-llm-key-2b60"


def _secrets() -> UserSecrets:
    return UserSecrets(
        provider_tokens={ProviderType.GITHUB: ProviderToken(TOKEN, host="git.example")},
        custom_secrets={"DEPLOY": CustomSecret(SECRET, "d")},
    )


async def _raw_rows(storage: SqlStorage) -> str:
    async with storage.engine.connect() as conn:
        rows = [
            *(await conn.execute(select(user_secrets.c.data))).scalars(),
            *(await conn.execute(select(user_settings.c.data))).scalars(),
        ]
    return json.dumps(rows)


async def test_secrets_and_keys_are_sealed_and_reopen_with_the_key(sql_url: str) -> None:
    key = new_key()
    storage = open_storage(sql_url, Sealer([key.encode()]))
    await storage.migrate()
    await storage.settings.save_secrets("user-1", _secrets())
    await storage.settings.save_settings("user-1", UserSettings(llm_api_key=LLM_KEY))
    raw = await _raw_rows(storage)
    await storage.aclose()
    for value in (SECRET, TOKEN, LLM_KEY, "DEPLOY", "git.example"):
        assert value not in raw

    reopened = open_storage(sql_url, Sealer([key.encode()]))
    try:
        assert await reopened.settings.load_secrets("user-1") == _secrets()
        settings = await reopened.settings.load_settings("user-1")
        assert settings is not None and settings.llm_api_key == LLM_KEY
    finally:
        await reopened.aclose()

    wrong = open_storage(sql_url, Sealer([new_key().encode()]))
    try:
        with pytest.raises(StorageError, match="cannot be opened with this key"):
            await wrong.settings.load_secrets("user-1")
    finally:
        await wrong.aclose()


async def test_plain_rows_of_an_older_version_are_sealed_at_migrate(sql_url: str) -> None:
    legacy = open_storage(sql_url)  # no sealer: how an older version stored them
    await legacy.migrate()
    await legacy.settings.save_secrets(None, _secrets())
    await legacy.settings.save_settings(None, UserSettings(llm_api_key=LLM_KEY))
    assert SECRET in await _raw_rows(legacy)
    await legacy.aclose()

    sealer = Sealer([new_key().encode()])
    storage = open_storage(sql_url, sealer)
    try:
        await storage.migrate()
        raw = await _raw_rows(storage)
        assert SECRET not in raw and TOKEN not in raw and LLM_KEY not in raw
        assert await storage.settings.load_secrets(None) == _secrets()
        settings = await storage.settings.load_settings(None)
        assert settings is not None and settings.llm_api_key == LLM_KEY
        await storage.migrate()  # idempotent: nothing left to seal
        assert await storage.settings.load_secrets(None) == _secrets()
    finally:
        await storage.aclose()


MCP_KEY, MCP_ENV = "sealed-mcp-key-77f0", "sealed-mcp-env-1e3b"
MCP = {
    "sse_servers": [],
    "stdio_servers": [{"name": "fs", "command": "npx", "args": [], "env": {"T": MCP_ENV}}],
    "shttp_servers": [{"url": "http://127.0.0.1:9/mcp", "api_key": MCP_KEY, "timeout": 60}],
}


async def test_mcp_servers_are_sealed_and_plain_ones_sealed_at_migrate(sql_url: str) -> None:
    legacy = open_storage(sql_url)  # no sealer: as stored before MCP servers were sealed
    await legacy.migrate()
    await legacy.settings.save_settings(None, UserSettings(extra={"mcp_config": MCP}))
    assert MCP_KEY in await _raw_rows(legacy)
    await legacy.aclose()

    storage = open_storage(sql_url, Sealer([new_key().encode()]))
    try:
        settings = await storage.settings.load_settings(None)  # a plain row still loads
        assert settings is not None and settings.extra["mcp_config"] == MCP
        await storage.migrate()
        raw = await _raw_rows(storage)
        assert MCP_KEY not in raw and MCP_ENV not in raw and "npx" not in raw
        settings = await storage.settings.load_settings(None)
        assert settings is not None and settings.extra["mcp_config"] == MCP
        settings.extra["language"] = "fr"
        await storage.settings.save_settings(None, settings)  # saved sealed again
        assert MCP_KEY not in await _raw_rows(storage)
        again = await storage.settings.load_settings(None)
        assert again is not None and again.extra["mcp_config"] == MCP
    finally:
        await storage.aclose()


def test_the_key_file_is_created_private_and_a_bad_key_is_refused(tmp_path: Path) -> None:
    first = load_sealer(tmp_path, None)
    key_file = tmp_path / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    sealed = first.seal_text("x")
    key_file.chmod(0o644)  # loosened by hand: narrowed again, and still the same key
    assert load_sealer(tmp_path, None).open_text(sealed) == "x"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # the environment's key seals from now on; the file's still opens what it sealed
    both = load_sealer(tmp_path, new_key())
    assert both.open_text(sealed) == "x"
    with pytest.raises(StorageError, match="Invalid secrets key"):
        load_sealer(tmp_path, "not-a-fernet-key")
