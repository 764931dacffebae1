from __future__ import annotations

from convo.domain.conversation import (
    CustomSecret,
    ProviderToken,
    ProviderType,
    UserSecrets,
    UserSettings,
)
from convo.storage.base import Storage


async def test_settings_round_trip_and_overwrite(storage: Storage) -> None:
    assert await storage.settings.load_settings("alice") is None
    settings = UserSettings(
        llm_model="openai/gpt-4o",
        llm_base_url="http://127.0.0.1:8000/v1",
        llm_api_key="sk-test",
        agent="CodeActAgent",
        max_iterations=50,
        max_budget_per_task=2.5,
        confirmation_mode=True,
        language="de",
        extra={"theme": "dark", "nested": {"a": [1, 2]}},
    )

    await storage.settings.save_settings("alice", settings)
    assert await storage.settings.load_settings("alice") == settings

    await storage.settings.save_settings("alice", UserSettings(language="fr"))
    assert await storage.settings.load_settings("alice") == UserSettings(language="fr")
    assert await storage.settings.load_settings("bob") is None


async def test_settings_for_anonymous_user(storage: Storage) -> None:
    await storage.settings.save_settings(None, UserSettings(llm_model="m"))

    assert await storage.settings.load_settings(None) == UserSettings(llm_model="m")
    assert await storage.settings.load_settings("alice") is None


async def test_secrets_round_trip(storage: Storage) -> None:
    assert await storage.settings.load_secrets("alice") == UserSecrets()
    secrets = UserSecrets(
        provider_tokens={
            ProviderType.GITHUB: ProviderToken(token="ghp_x", host="github.com", user_id="42"),
            ProviderType.GITLAB: ProviderToken(token="glpat_y"),
        },
        custom_secrets={"API_KEY": CustomSecret(secret="s3cret", description="for tests")},
    )

    await storage.settings.save_secrets("alice", secrets)
    loaded = await storage.settings.load_secrets("alice")

    assert loaded == secrets
    assert all(isinstance(p, ProviderType) for p in loaded.provider_tokens)
    assert await storage.settings.load_secrets(None) == UserSecrets()

    await storage.settings.save_secrets("alice", UserSecrets())
    assert await storage.settings.load_secrets("alice") == UserSecrets()


async def test_loaded_objects_do_not_alias_stored_ones(storage: Storage) -> None:
    settings = UserSettings(extra={"k": ["v"]})
    await storage.settings.save_settings("alice", settings)
    settings.extra["k"].append("changed")

    loaded = await storage.settings.load_settings("alice")

    assert loaded is not None and loaded.extra == {"k": ["v"]}
