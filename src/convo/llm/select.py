"""Which client calls a model: the light OpenAI-compatible one, or litellm.

The one place the choice is made (``LLMClients``, the production ``LLMClientFactory``, is what
the conversation loop calls to build its client). OpenAI-compatible endpoints go through
``convo.llm.openai_compat`` and never import litellm:

- ``openai/...``, ``openrouter/...``, ``hosted_vllm/...``, ``lm_studio/...``,
  ``litellm_proxy/...``, ``ollama/...``, ``ollama_chat/...`` (the prefix is removed from the
  model name sent; Ollama is called on its ``/v1`` OpenAI-compatible API);
- a model without a provider prefix that litellm's price map lists as OpenAI's
  (``gpt-4o``), or that has a base URL (a local server naming its own models).

The model name ``demo`` is convo's built-in scripted demo model (``convo.llm.demo``).

Everything else (``anthropic/...``, ``bedrock/...``, ``gemini/...``, ``vertex_ai/...``, ...)
goes through litellm, imported at that model's first call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convo.errors import LLMNotConfigured
from convo.llm.base import LLMClient, LLMConfig
from convo.llm.demo import DEMO_MODEL, DemoLLM
from convo.llm.model_info import lookup

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

# provider prefix -> its default base URL (None: the base URL must be configured)
OPENAI_COMPATIBLE: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "hosted_vllm": None,
    "lm_studio": None,
    "litellm_proxy": None,
    "ollama": "http://localhost:11434",
    "ollama_chat": "http://localhost:11434",
}
_OLLAMA = {"ollama", "ollama_chat"}


@dataclass(frozen=True)
class Route:
    """How a model is called: through litellm, or the light client at ``base_url``."""

    litellm: bool
    base_url: str | None = None
    model_name: str = ""  # the name the endpoint knows the model by


def route(config: LLMConfig) -> Route:
    """Where ``config``'s model is called (reads the price map only for unprefixed names)."""
    prefix, sep, rest = config.model.partition("/")
    if sep and prefix in OPENAI_COMPATIBLE:
        base = config.base_url or OPENAI_COMPATIBLE[prefix]
        if base and prefix in _OLLAMA and not base.rstrip("/").endswith("/v1"):
            base = base.rstrip("/") + "/v1"
        return Route(litellm=False, base_url=base, model_name=rest)
    if sep:
        return Route(litellm=True)
    if config.base_url:
        return Route(litellm=False, base_url=config.base_url, model_name=config.model)
    info = lookup(config.model)
    if info is not None and info.provider == "openai":
        return Route(litellm=False, base_url=OPENAI_COMPATIBLE["openai"], model_name=config.model)
    return Route(litellm=True)


class LLMClients:
    """The production ``LLMClientFactory``: one client per conversation, chosen by ``route``.

    Light clients share one connection pool, created at the first light client and closed by
    ``aclose`` (the app's shutdown).
    """

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None
        self._creating: asyncio.Lock | None = None

    def __call__(self, config: LLMConfig) -> LLMClient:
        if not config.model:
            raise LLMNotConfigured("No LLM model is configured")
        if config.model == DEMO_MODEL:
            return DemoLLM()
        chosen = route(config)
        if chosen.litellm:
            from convo.llm.litellm_client import LiteLLMClient

            return LiteLLMClient(config)
        if not chosen.base_url:
            raise LLMNotConfigured(
                f"The model {config.model} needs a base URL (CONVO_LLM_BASE_URL or "
                "llm_base_url in the settings)"
            )
        from convo.llm.openai_compat import OpenAICompatClient

        return OpenAICompatClient(
            config, pool=self.pool, base_url=chosen.base_url, model_name=chosen.model_name
        )

    async def pool(self) -> httpx.AsyncClient:
        """The shared connection pool, created at the first call. Creating it imports httpx
        and loads the TLS certificates (tens of milliseconds): in a worker thread, so the
        server keeps answering meanwhile."""
        if self._http is not None:
            return self._http
        if self._creating is None:
            self._creating = asyncio.Lock()
        async with self._creating:
            if self._http is None:
                self._http = await asyncio.to_thread(_new_pool)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()


def _new_pool() -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
