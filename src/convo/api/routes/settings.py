"""/api/settings and /api/add-git-providers: per-user LLM settings and provider tokens."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from convo.api.deps import SettingsDep, StorageDep, UserIdDep
from convo.api.schemas import (
    CLIENT_SETTINGS,
    GitProvidersBody,
    MessageResponse,
    SettingsBody,
    SettingsView,
)
from convo.domain.conversation import ProviderToken, UserSettings
from convo.domain.mcp_config import MCPConfig
from convo.services.user_config import resolve_config

router = APIRouter(prefix="/api", tags=["settings"])


NOT_STORED = {"error": "Settings not found"}
_CLEARED_BY_EMPTY = ("llm_api_key", "git_user_name", "git_user_email")


def _stored_mcp(stored: UserSettings) -> MCPConfig | None:
    """The stored MCP servers; None when there are none, or they no longer validate (the
    conversation's start says why)."""
    try:
        return (
            MCPConfig.parse(stored.extra["mcp_config"]) if stored.extra.get("mcp_config") else None
        )
    except ValueError:
        return None


@router.get("/settings", response_model=SettingsView, responses={404: {"model": dict[str, str]}})
async def load_settings(
    storage: StorageDep, settings: SettingsDep, user_id: UserIdDep
) -> SettingsView | JSONResponse:
    """404 while the user has stored nothing and the server has no default model, as in
    OpenHands: the web client opens its first-run LLM dialog on it."""
    stored = await storage.settings.load_settings(user_id)
    if stored is None:
        if not settings.llm_model:
            return JSONResponse(NOT_STORED, status_code=404)
        stored = UserSettings()
    secrets = await storage.settings.load_secrets(user_id)
    effective = resolve_config(settings, stored, secrets, None)  # what a conversation runs with
    kept = {name: stored.extra[name] for name in CLIENT_SETTINGS if name in stored.extra}
    if "mcp_config" in kept:  # its API keys and environment values hidden
        servers = _stored_mcp(stored)
        kept["mcp_config"] = servers.to_view() if servers is not None else None
    return SettingsView(
        **kept,
        language=stored.language,
        agent=stored.agent or "CodeActAgent",
        max_iterations=effective.max_iterations,
        max_budget_per_task=effective.max_budget_per_task,
        confirmation_mode=stored.confirmation_mode,
        llm_model=stored.llm_model or settings.llm_model,
        llm_base_url=stored.llm_base_url or settings.llm_base_url,
        llm_api_key_set=bool(stored.llm_api_key or settings.llm_api_key),
        search_api_key_set=bool(stored.search_api_key),
        git_user_name=effective.repository.git_user_name,
        git_user_email=effective.repository.git_user_email,
        provider_tokens_set={p: t.host for p, t in secrets.provider_tokens.items()},
    )


@router.post("/settings", response_model=MessageResponse)
async def store_settings(
    body: SettingsBody, storage: StorageDep, user_id: UserIdDep
) -> MessageResponse:
    """A partial update: fields absent or null keep their stored value. An empty LLM key or
    git identity clears it; an empty search key keeps the stored one (the web client sends
    one with every save), as OpenHands does."""
    stored = await storage.settings.load_settings(user_id) or UserSettings()
    updates = body.model_dump(exclude_none=True)
    if body.mcp_config is not None:  # hidden values sent back keep the stored ones
        updates["mcp_config"] = body.mcp_config.keeping_hidden(_stored_mcp(stored)).to_wire()
    if not str(updates.get("search_api_key", "x")).strip():
        del updates["search_api_key"]
    for name in _CLEARED_BY_EMPTY:
        if isinstance(updates.get(name), str) and not updates[name].strip():
            updates[name] = None
    extra = dict(stored.extra)
    for name, value in updates.items():
        if name in CLIENT_SETTINGS:
            extra[name] = value
        else:
            setattr(stored, name, value)
    stored.extra = extra
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
