"""A conversation's LLM usage, in OpenHands' ``llm_metrics`` wire shape (``Metrics``).

The totals (``accumulated_cost``, ``accumulated_token_usage``) cover every call of the
conversation. The per-call lists (``costs``, ``response_latencies``, ``token_usages``)
accumulate too, keeping the last :data:`MAX_CALLS_KEPT` calls so that an event's size stays
bounded in a long conversation. A cost entry is added only for a call whose price is known.
After a restart the loop resumes from the last event that carried metrics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from convo.domain.events import Cost, Event, Metrics, ResponseLatency, TokenUsage
from convo.llm.base import LLMResponse

MAX_CALLS_KEPT = 20


class LLMMetrics:
    """The running ``llm_metrics`` of one conversation."""

    def __init__(
        self,
        model: str = "",
        max_budget_per_task: float | None = None,
        start: Metrics | None = None,
    ) -> None:
        self.model = model
        base = start or Metrics(accumulated_token_usage=TokenUsage(model=model))
        self._metrics = base.model_copy(update={"max_budget_per_task": max_budget_per_task})

    @classmethod
    def from_history(
        cls, history: Sequence[Event], max_budget: float | None, model: str = ""
    ) -> LLMMetrics:
        """Resume from the last event that carried metrics (after a restart)."""
        last = next((e.llm_metrics for e in reversed(history) if e.llm_metrics), None)
        return cls(model, max_budget, last)

    @property
    def cost(self) -> float:
        return self._metrics.accumulated_cost

    def add(self, response: LLMResponse, context_window: int = 0) -> None:
        usage = response.usage
        total = self._metrics.accumulated_token_usage
        per_turn = usage.prompt_tokens + usage.completion_tokens
        call = TokenUsage(
            model=self.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            context_window=context_window,
            per_turn_token=per_turn,
            response_id=response.response_id,
        )
        costs = list(self._metrics.costs)
        if usage.cost > 0:
            costs.append(Cost(model=self.model, cost=usage.cost, timestamp=time.time()))
        latency = ResponseLatency(
            model=self.model,
            latency=max(0.0, usage.latency_seconds),
            response_id=response.response_id,
        )
        self._metrics = self._metrics.model_copy(
            update={
                "accumulated_cost": self._metrics.accumulated_cost + usage.cost,
                "accumulated_token_usage": TokenUsage(
                    model=self.model or total.model,
                    prompt_tokens=total.prompt_tokens + usage.prompt_tokens,
                    completion_tokens=total.completion_tokens + usage.completion_tokens,
                    cache_read_tokens=total.cache_read_tokens + usage.cache_read_tokens,
                    cache_write_tokens=total.cache_write_tokens + usage.cache_write_tokens,
                    context_window=max(total.context_window, context_window),
                    per_turn_token=per_turn,
                    response_id="",
                ),
                "costs": costs[-MAX_CALLS_KEPT:],
                "response_latencies": [*self._metrics.response_latencies, latency][
                    -MAX_CALLS_KEPT:
                ],
                "token_usages": [*self._metrics.token_usages, call][-MAX_CALLS_KEPT:],
            }
        )

    def snapshot(self) -> Metrics:
        """What the next event carries."""
        return self._metrics
