"""The light LLM client: OpenAI's chat-completions API over httpx, without litellm.

OpenAI itself and every server that speaks its API (vLLM, Ollama, LM Studio, OpenRouter, a
LiteLLM proxy, ...) are called here: one POST to ``{base_url}/chat/completions`` with the
messages and tools, answered with choices, tool calls and usage. Behaviour matches the
litellm path (``convo.llm.litellm_client``): the same error tree, retries on the same
failures, costs from litellm's price map read as data (``convo.llm.model_info``) or the
``x-litellm-response-cost`` header of a LiteLLM proxy.

The connection pool (one ``httpx.AsyncClient``) is shared by every conversation and owned by
``convo.llm.select.LLMClients``, which closes it on shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from convo.errors import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
)
from convo.llm.base import LLMConfig, LLMResponse, LLMUsage, ToolCall
from convo.llm.model_info import ModelInfo, lookup

if TYPE_CHECKING:  # imported with the pool, in a worker thread (convo.llm.select)
    import httpx

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 500
_RETRY_STATUSES = {408, 409, 429} | set(range(500, 600))
_BACKOFF_SECONDS = 0.5  # doubled on each retry, up to _BACKOFF_MAX
_BACKOFF_MAX = 8.0


class _Retryable(Exception):
    """A failure worth another try; carries the error to raise once tries run out."""

    def __init__(self, error: LLMError) -> None:
        super().__init__(str(error))
        self.error = error


class OpenAICompatClient:
    """One model on one OpenAI-compatible endpoint (an ``LLMClient``)."""

    def __init__(
        self,
        config: LLMConfig,
        *,
        pool: Callable[[], Awaitable[httpx.AsyncClient]],
        base_url: str,
        model_name: str,
    ) -> None:
        self.config = config
        self._pool = pool
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model_name = model_name  # as the endpoint knows it (provider prefix removed)
        self._info: ModelInfo | None = None
        self._info_loaded = False

    def _api_key(self) -> str | None:
        key = self.config.api_key
        return key.get_secret_value() if key is not None else None

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> LLMResponse:
        body: dict[str, Any] = {"model": self._model_name, "messages": messages}
        if tools:
            body["tools"] = tools
        headers = {"Content-Type": "application/json"}
        api_key = self._api_key()
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                response = await self._post(body, headers, api_key)
                break
            except _Retryable as failure:
                if attempt >= self.config.num_retries:
                    logger.warning("LLM call failed: %s", failure.error)
                    raise failure.error from None
                delay = min(_BACKOFF_SECONDS * 2**attempt, _BACKOFF_MAX)
                attempt += 1
                logger.info("LLM call failed (%s); retry %d in %.1f s", failure, attempt, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            except LLMError as error:
                logger.warning("LLM call failed: %s", error)
                raise
        return await self._to_response(response, time.monotonic() - started)

    async def _post(
        self, body: dict[str, Any], headers: dict[str, str], api_key: str | None
    ) -> httpx.Response:
        http = await self._pool()
        import httpx  # loaded by the pool already

        model = self.config.model
        try:
            response = await http.post(
                self._url, json=body, headers=headers, timeout=self.config.timeout_seconds
            )
        except httpx.TimeoutException as exc:
            raise _Retryable(
                LLMConnectionError(
                    f"The LLM endpoint for {model} did not answer in "
                    f"{self.config.timeout_seconds:g} s ({type(exc).__name__})"
                )
            ) from None
        except httpx.HTTPError as exc:
            detail = _redact(f"{type(exc).__name__}: {exc}", api_key)
            raise _Retryable(
                LLMConnectionError(f"Could not reach the LLM endpoint for {model}: {detail}")
            ) from None
        if response.status_code >= 400:
            error = status_error(response, model=model, api_key=api_key)
            if response.status_code in _RETRY_STATUSES:
                raise _Retryable(error)
            raise error
        return response

    async def _to_response(self, response: httpx.Response, latency: float) -> LLMResponse:
        model = self.config.model
        try:
            data = response.json()
            message = data["choices"][0]["message"]
            raw_calls = message.get("tool_calls") or []
            tool_calls = [
                ToolCall(
                    id=str(call.get("id") or f"call_{index}"),
                    name=str(call["function"]["name"]),
                    arguments=_arguments(call["function"].get("arguments")),
                )
                for index, call in enumerate(raw_calls)
            ]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError(
                f"The LLM endpoint for {model} answered with no usable choice "
                f"({type(exc).__name__})"
            ) from None
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        content = message.get("content")
        created = data.get("created")
        return LLMResponse(
            content=content if isinstance(content, str) and content else None,
            tool_calls=tool_calls,
            usage=LLMUsage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost=await self._cost(response, prompt_tokens, completion_tokens, cached),
                latency_seconds=latency,
                cache_read_tokens=cached,
                cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
            ),
            response_id=str(data.get("id") or ""),
            model=str(data.get("model") or ""),
            created=created if isinstance(created, int) else 0,
        )

    async def _cost(
        self, response: httpx.Response, prompt_tokens: int, completion_tokens: int, cached: int
    ) -> float:
        """The proxy's own figure when it sends one, else the price map's; 0 if unknown."""
        header = response.headers.get("x-litellm-response-cost")
        if header:
            try:
                return max(0.0, float(header))
            except ValueError:
                pass
        if not self._info_loaded:
            self._info = await asyncio.to_thread(lookup, self.config.model)
            self._info_loaded = True
        if self._info is None:
            return 0.0
        return self._info.cost(prompt_tokens, completion_tokens, cached)


def _arguments(raw: Any) -> str:
    if raw is None:
        return ""
    return raw if isinstance(raw, str) else json.dumps(raw)


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "<secret_hidden>")
    return text[:_MAX_ERROR_CHARS]


def status_error(response: httpx.Response, *, model: str, api_key: str | None) -> LLMError:
    """An HTTP error answer as convo's LLMError, with the provider's message, never the key."""
    status = response.status_code
    detail = _redact(f"{status} {_error_message(response)}", api_key)
    if status in (401, 403):
        return LLMAuthenticationError(f"LLM authentication failed for {model}: {detail}")
    if status == 429:
        return LLMRateLimitError(f"LLM rate limit reached for {model}: {detail}")
    if status in (400, 404, 413, 422):
        return LLMBadRequestError(f"The LLM provider refused the request for {model}: {detail}")
    return LLMError(f"LLM call failed for {model}: {detail}")


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return response.text.strip()
