"""/api/options/*: what the web client offers in its settings screens.

The model list comes from the price map litellm ships, read as a file (without importing
litellm, which is slow to import) and never fetched from the network.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

from fastapi import APIRouter

from convo.api.deps import SettingsDep, StorageDep, UserIdDep
from convo.llm.model_info import known_chat_models

router = APIRouter(prefix="/api/options", tags=["options"])

AGENTS = ["CodeActAgent"]


@lru_cache(maxsize=1)
def known_models() -> tuple[str, ...]:
    """The chat models litellm's price map lists (parsed once); empty if it is missing."""
    return known_chat_models()


@router.get("/models")
async def get_models(settings: SettingsDep, storage: StorageDep, user_id: UserIdDep) -> list[str]:
    models = set(await asyncio.to_thread(known_models))
    stored = await storage.settings.load_settings(user_id)
    for configured in (settings.llm_model, stored.llm_model if stored else None):
        if configured:
            models.add(configured)
    return sorted(models)


@router.get("/agents")
async def get_agents() -> list[str]:
    return list(AGENTS)


@router.get("/security-analyzers")
async def get_security_analyzers() -> list[str]:
    return []  # convo has no security analyzer


@router.get("/config")
async def get_config() -> dict[str, Any]:
    return {
        "APP_MODE": "oss",
        "APP_SLUG": None,
        "GITHUB_CLIENT_ID": "",
        "POSTHOG_CLIENT_KEY": "",
        "FEATURE_FLAGS": {
            "ENABLE_BILLING": False,
            "HIDE_LLM_SETTINGS": False,
            "ENABLE_JIRA": False,
            "ENABLE_JIRA_DC": False,
            "ENABLE_LINEAR": False,
            "HIDE_MICROAGENT_MANAGEMENT": True,  # as OpenHands OSS: its page is hidden
        },
    }
