"""/api/options/*: what the web client offers in its settings screens.

The model list comes from the price map litellm ships, read as a file (without importing
litellm, which is slow to import) and never fetched from the network.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from convo.api.deps import SettingsDep, StorageDep, UserIdDep

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/options", tags=["options"])

AGENTS = ["CodeActAgent"]
_PRICE_MAP = "model_prices_and_context_window_backup.json"
_CHAT_MODES = {"chat", "responses", None}


def _price_map_path() -> Path | None:
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / _PRICE_MAP


@lru_cache(maxsize=1)
def known_models() -> tuple[str, ...]:
    """The chat models litellm knows of, sorted; empty if its price map is missing."""
    path = _price_map_path()
    if path is None or not path.is_file():
        logger.warning("litellm's model list is not available")
        return ()
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("could not read litellm's model list from %s", path)
        return ()
    return tuple(
        sorted(
            name
            for name, spec in data.items()
            if name != "sample_spec" and isinstance(spec, dict) and spec.get("mode") in _CHAT_MODES
        )
    )


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
        },
    }
