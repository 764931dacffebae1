"""Typed pieces events carry: ``llm_metrics``, ``tool_call_metadata`` and a command's metadata.

Shapes as OpenHands 0.53 serialises them (``llm/metrics.py``, ``events/tool.py``,
``events/observation/commands.py``). Each keeps keys it does not declare, so a payload from a
newer writer round-trips.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)


class Cost(_Part):
    model: str = ""
    cost: float = 0.0
    timestamp: float = 0.0


class ResponseLatency(_Part):
    """The round-trip time of one LLM call."""

    model: str = ""
    latency: float = 0.0
    response_id: str = ""


class TokenUsage(_Part):
    """Tokens of one LLM call, or (``accumulated_token_usage``) summed over a conversation."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    context_window: int = 0
    per_turn_token: int = 0
    response_id: str = ""


class Metrics(_Part):
    """A conversation's LLM usage so far: totals plus one entry per call."""

    accumulated_cost: float = 0.0
    max_budget_per_task: float | None = None
    accumulated_token_usage: TokenUsage = Field(default_factory=TokenUsage)
    costs: list[Cost] = Field(default_factory=list)
    response_latencies: list[ResponseLatency] = Field(default_factory=list)
    token_usages: list[TokenUsage] = Field(default_factory=list)


class ToolCallMetadata(_Part):
    """Which tool call of which LLM response an action (and its observation) answers."""

    function_name: str = ""
    tool_call_id: str = ""
    model_response: dict[str, Any] = Field(default_factory=dict)
    total_calls_in_response: int = 1


class CmdOutputMetadata(_Part):
    """What the shell reported about a command (``extras.metadata`` of a ``run``)."""

    exit_code: int = -1
    pid: int = -1
    username: str | None = None
    hostname: str | None = None
    working_dir: str | None = None
    py_interpreter_path: str | None = None
    prefix: str = ""
    suffix: str = ""
