"""The LLM client protocol: one chat-completion call with tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr


@dataclass(frozen=True)
class LLMConfig:
    model: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_seconds: float = 120.0
    num_retries: int = 2


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it


@dataclass(frozen=True)
class LLMUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_seconds: float = 0.0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class LLMResponse:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: LLMUsage = field(default_factory=LLMUsage)
    response_id: str = ""
    model: str = ""  # as the endpoint named it
    created: int = 0  # the endpoint's Unix time of the response


class LLMClient(Protocol):
    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> LLMResponse:
        """One completion. Raises convo.errors.LLMError subclasses, never provider errors."""


class LLMClientFactory(Protocol):
    def __call__(self, config: LLMConfig) -> LLMClient: ...
