"""Accumulated LLM usage of a conversation, in OpenHands' ``llm_metrics`` wire shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from convo.domain.events import Event
from convo.llm.base import LLMResponse


@dataclass
class LLMMetrics:
    """Cost and tokens summed over the conversation; the last call's figures for the wire."""

    max_budget_per_task: float | None = None
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_cost: float = 0.0
    last_prompt_tokens: int = 0
    last_completion_tokens: int = 0
    last_latency: float = 0.0
    last_response_id: str = ""

    @classmethod
    def from_history(cls, history: Sequence[Event], max_budget: float | None) -> LLMMetrics:
        """Resume the sums from the last event that carried metrics (after a restart)."""
        metrics = cls(max_budget_per_task=max_budget)
        for event in reversed(history):
            if event.llm_metrics:
                usage = event.llm_metrics.get("accumulated_token_usage") or {}
                metrics.cost = float(event.llm_metrics.get("accumulated_cost") or 0.0)
                metrics.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                metrics.completion_tokens = int(usage.get("completion_tokens") or 0)
                break
        return metrics

    def add(self, response: LLMResponse) -> None:
        usage = response.usage
        self.cost += usage.cost
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.last_cost = usage.cost
        self.last_prompt_tokens = usage.prompt_tokens
        self.last_completion_tokens = usage.completion_tokens
        self.last_latency = usage.latency_seconds
        self.last_response_id = response.response_id

    def to_wire(self) -> dict[str, Any]:
        response_id = self.last_response_id
        return {
            "accumulated_cost": self.cost,
            "max_budget_per_task": self.max_budget_per_task,
            "accumulated_token_usage": {
                "model": "",
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "context_window": 0,
                "per_turn_token": self.last_prompt_tokens + self.last_completion_tokens,
                "response_id": "",
            },
            "costs": [{"model": "", "cost": self.last_cost, "timestamp": 0.0}],
            "response_latencies": [
                {"model": "", "latency": self.last_latency, "response_id": response_id}
            ],
            "token_usages": [
                {
                    "model": "",
                    "prompt_tokens": self.last_prompt_tokens,
                    "completion_tokens": self.last_completion_tokens,
                    "cache_read_tokens": 0,
                    "cache_write_tokens": 0,
                    "context_window": 0,
                    "per_turn_token": self.last_prompt_tokens + self.last_completion_tokens,
                    "response_id": response_id,
                }
            ],
        }
