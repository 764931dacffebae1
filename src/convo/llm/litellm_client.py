"""The LLM client backed by litellm; provider errors become ``convo.errors.LLMError``s here.

litellm is imported lazily, on the first call: importing it takes seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from types import ModuleType
from typing import Any

from convo.errors import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMNotConfigured,
    LLMRateLimitError,
)
from convo.llm.base import LLMClient, LLMConfig, LLMResponse, LLMUsage, ToolCall

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 500
_litellm: ModuleType | None = None


def _import_litellm() -> ModuleType:
    global _litellm
    if _litellm is None:
        # The one sanctioned environment write: without it litellm downloads its model price
        # map from the internet at import. Nothing here may call outside the machine, and
        # setdefault leaves an operator's explicit choice alone.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.suppress_debug_info = True  # no "give feedback / debug" banners on errors
        _litellm = litellm
    return _litellm


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "<secret_hidden>")
    return text[:_MAX_ERROR_CHARS]


def translate_error(exc: Exception, *, model: str, api_key: str | None) -> LLMError:
    """Map a litellm/openai exception to convo's LLMError tree; the key never appears."""
    import openai  # already imported by litellm; only reached after a call failed

    detail = _redact(str(exc), api_key)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError) or status in (
        401,
        403,
    ):
        return LLMAuthenticationError(f"LLM authentication failed for {model}: {detail}")
    if isinstance(exc, openai.RateLimitError) or status == 429:
        return LLMRateLimitError(f"LLM rate limit reached for {model}: {detail}")
    if _is_connection_failure(exc, openai.APIConnectionError):
        return LLMConnectionError(f"Could not reach the LLM endpoint for {model}: {detail}")
    if isinstance(
        exc, openai.BadRequestError | openai.NotFoundError | openai.UnprocessableEntityError
    ) or status in (400, 404, 422):
        return LLMBadRequestError(f"The LLM provider refused the request for {model}: {detail}")
    return LLMError(f"LLM call failed for {model} ({type(exc).__name__}): {detail}")


def _is_connection_failure(exc: BaseException, connection_error: type[Exception]) -> bool:
    """Whether the exception or one it was raised from is a connection failure or timeout.

    litellm reports a refused connection as a 500 InternalServerError whose cause chain holds
    openai's APIConnectionError, so the chain is walked (bounded, against cycles).
    """
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if isinstance(current, connection_error | ConnectionError | TimeoutError):
            return True
        current = current.__cause__ or current.__context__
    return False


class LiteLLMClient:
    """One model, called through ``litellm.acompletion`` with tools."""

    def __init__(self, config: LLMConfig) -> None:
        if not config.model:
            raise LLMNotConfigured("No LLM model is configured")
        self.config = config

    def _api_key(self) -> str | None:
        key = self.config.api_key
        return key.get_secret_value() if key is not None else None

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> LLMResponse:
        # The first import takes seconds of CPU: in a thread, so the server keeps answering.
        litellm = _litellm if _litellm is not None else await asyncio.to_thread(_import_litellm)
        api_key = self._api_key()
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "timeout": self.config.timeout_seconds,
            "num_retries": self.config.num_retries,
            "max_retries": 0,  # retries are litellm's (num_retries), not the SDK's as well
            "drop_params": True,
        }
        if tools:
            kwargs["tools"] = tools
        if api_key is not None:
            kwargs["api_key"] = api_key
        if self.config.base_url:
            kwargs["base_url"] = self.config.base_url
        started = time.monotonic()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            error = translate_error(exc, model=self.config.model, api_key=api_key)
            logger.warning("LLM call failed: %s", error)
            raise error from None  # the provider exception may carry the key in its args
        latency = time.monotonic() - started
        return self._to_response(litellm, response, latency)

    def _to_response(self, litellm: ModuleType, response: Any, latency: float) -> LLMResponse:
        try:
            message = response.choices[0].message
        except (AttributeError, IndexError) as exc:
            raise LLMError(f"The LLM returned no choices for {self.config.model}") from exc
        tool_calls = [
            ToolCall(
                id=str(call.id),
                name=str(call.function.name),
                arguments=str(call.function.arguments or ""),
            )
            for call in (getattr(message, "tool_calls", None) or [])
        ]
        usage = getattr(response, "usage", None)
        details = getattr(usage, "prompt_tokens_details", None)
        created = getattr(response, "created", 0)
        return LLMResponse(
            content=getattr(message, "content", None) or None,
            tool_calls=tool_calls,
            usage=LLMUsage(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                cost=self._cost(litellm, response),
                latency_seconds=latency,
                cache_read_tokens=int(getattr(details, "cached_tokens", 0) or 0),
                cache_write_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
            ),
            response_id=str(getattr(response, "id", "") or ""),
            model=str(getattr(response, "model", "") or ""),
            created=created if isinstance(created, int) else 0,
        )

    def _cost(self, litellm: ModuleType, response: Any) -> float:
        """The call's cost from litellm's price map; 0 for models it does not know."""
        try:
            return float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # unknown model or provider: litellm raises for unmapped prices
            return 0.0


def make_llm_client(config: LLMConfig) -> LLMClient:
    """The production factory (an ``LLMClientFactory``)."""
    return LiteLLMClient(config)
