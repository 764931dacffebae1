"""The LLM a running conversation calls, following the user's saved LLM settings.

A conversation's loop lives for hours; its user may meanwhile change the model, the key or
the base URL (``POST /api/settings``). Before each call, ``LiveLLM`` resolves the LLM
configuration again (the user's saved settings over the server's defaults: one small
read, next to a call that takes seconds) and builds a new client when it changed, so the
change reaches every running conversation at its next LLM call, without a restart.

The new configuration is handed to ``on_change`` before the first call with it, so that
events and the log mask a new key as they mask the key the loop started with.

A conversation created with ``replay_json`` answers its first calls from the recorded
trajectory instead (``convo.services.replay``), consuming it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from convo.errors import LLMNotConfigured, StorageError
from convo.llm.base import LLMClient, LLMClientFactory, LLMConfig, LLMResponse

logger = logging.getLogger(__name__)

NOT_CONFIGURED = (
    "No LLM is configured: set CONVO_LLM_MODEL (and CONVO_LLM_API_KEY) on the server "
    "or save llm_model in /api/settings"
)

ConfigSource = Callable[[], Awaitable[LLMConfig | None]]


class LiveLLM:
    """An ``LLMClient`` that rebuilds its client whenever the resolved configuration changes."""

    def __init__(
        self,
        factory: LLMClientFactory,
        current_config: ConfigSource,
        initial: LLMConfig | None,
        on_change: Callable[[LLMConfig | None], None] = lambda _config: None,
        replay: list[LLMResponse] | None = None,
    ) -> None:
        self._replay = replay if replay is not None else []
        self._factory = factory
        self._current_config = current_config
        self._on_change = on_change
        self._config = initial
        self._client: LLMClient | None = factory(initial) if initial is not None else None

    @property
    def config(self) -> LLMConfig | None:
        return self._config

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> LLMResponse:
        if self._replay:  # a trajectory being replayed (services.replay) answers first
            return self._replay.pop(0)
        await self._follow_settings()
        if self._client is None:
            raise LLMNotConfigured(NOT_CONFIGURED)
        return await self._client.complete(messages, tools)

    async def _follow_settings(self) -> None:
        try:
            config = await self._current_config()
        except StorageError as exc:  # a database hiccup must not fail the call: keep going
            logger.warning("could not read the LLM settings, keeping the current ones: %s", exc)
            return
        if config == self._config:
            return
        self._client = self._factory(config) if config is not None else None
        self._config = config
        self._on_change(config)
        logger.info(
            "LLM settings changed: now %s%s",
            config.model if config else "no model",
            f" at {config.base_url}" if config and config.base_url else "",
        )
