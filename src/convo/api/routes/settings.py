"""/api/settings and /api/add-git-providers: per-user LLM settings and provider tokens."""

from __future__ import annotations

from fastapi import APIRouter

from convo.api.deps import SettingsDep, StorageDep, UserIdDep
from convo.api.schemas import GitProvidersBody, MessageResponse, SettingsBody, SettingsView
from convo.domain.conversation import ProviderToken, UserSettings

router = APIRouter(prefix="/api", tags=["settings"])


@router.get("/settings", response_model=SettingsView)
async def load_settings(
    storage: StorageDep, settings: SettingsDep, user_id: UserIdDep
) -> SettingsView:
    stored = await storage.settings.load_settings(user_id) or UserSettings()
    secrets = await storage.settings.load_secrets(user_id)
    return SettingsView(
        language=stored.language,
        agent=stored.agent or "CodeActAgent",
        max_iterations=stored.max_iterations or settings.max_iterations,
        max_budget_per_task=(
            stored.max_budget_per_task
            if stored.max_budget_per_task is not None
            else settings.max_budget_per_task
        ),
        confirmation_mode=stored.confirmation_mode,
        llm_model=stored.llm_model or settings.llm_model,
        llm_base_url=stored.llm_base_url or settings.llm_base_url,
        llm_api_key_set=bool(stored.llm_api_key or settings.llm_api_key),
        provider_tokens_set={p: t.host for p, t in secrets.provider_tokens.items()},
    )


@router.post("/settings", response_model=MessageResponse)
async def store_settings(
    body: SettingsBody, storage: StorageDep, user_id: UserIdDep
) -> MessageResponse:
    stored = await storage.settings.load_settings(user_id) or UserSettings()
    updates = body.model_dump(exclude_none=True)
    if updates.get("llm_api_key") == "":
        updates["llm_api_key"] = None  # an empty key clears the saved one
    for name, value in updates.items():
        setattr(stored, name, value)
    await storage.settings.save_settings(user_id, stored)
    return MessageResponse(message="Settings stored")


@router.post("/add-git-providers", response_model=MessageResponse)
async def store_provider_tokens(
    body: GitProvidersBody, storage: StorageDep, user_id: UserIdDep
) -> MessageResponse:
    secrets = await storage.settings.load_secrets(user_id)
    for provider, token in body.provider_tokens.items():
        existing = secrets.provider_tokens.get(provider)
        value = token.token or (existing.token if existing else "")
        if value:
            secrets.provider_tokens[provider] = ProviderToken(
                token=value, host=token.host, user_id=token.user_id
            )
    await storage.settings.save_secrets(user_id, secrets)
    return MessageResponse(message="Git providers stored")
