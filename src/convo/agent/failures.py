"""The agent's error events: their ``error_id`` values and the wording of LLM failures.

``AGENT_ERROR$`` errors without a tool call are replayed to the LLM later (it should know why
it was stopped); ``STATUS$`` errors are for the user only. Errors answering a tool call are
always replayed, as that call's result.
"""

from __future__ import annotations

from convo.errors import (
    LLMAuthenticationError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMNotConfigured,
    LLMRateLimitError,
)

AGENT_ERROR_PREFIX = "AGENT_ERROR$"
ERROR_MAX_ITERATIONS = "AGENT_ERROR$MAX_ITERATIONS"
ERROR_BUDGET = "AGENT_ERROR$MAX_BUDGET"
ERROR_STUCK = "AGENT_ERROR$STUCK"
ERROR_NO_ACTION = "AGENT_ERROR$NO_ACTION"
ERROR_TOOL_CALL = "AGENT_ERROR$BAD_TOOL_CALL"
ERROR_TOOL_FAILED = "AGENT_ERROR$TOOL_FAILED"
ERROR_INTERRUPTED = "AGENT_ERROR$INTERRUPTED"
ERROR_UNEXPECTED = "STATUS$ERROR_UNEXPECTED"
ERROR_LLM = "STATUS$ERROR_LLM"

_LLM_FAILURES: list[tuple[type[LLMError], str, str]] = [
    (
        LLMAuthenticationError,
        "STATUS$ERROR_LLM_AUTHENTICATION",
        "LLM authentication failed: check the API key",
    ),
    (
        LLMConnectionError,
        "STATUS$ERROR_LLM_CONNECTION",
        "Could not connect to the LLM: check the base URL and that the provider is reachable",
    ),
    (
        LLMRateLimitError,
        "STATUS$ERROR_LLM_RATE_LIMIT",
        "The LLM provider's rate limit was reached: wait, then send a message to retry",
    ),
    (
        LLMBadRequestError,
        "STATUS$ERROR_LLM_BAD_REQUEST",
        "The LLM provider refused the request: check the model name and settings",
    ),
    (
        LLMNotConfigured,
        "STATUS$ERROR_LLM_NOT_CONFIGURED",
        "No LLM is configured: set a model in the settings",
    ),
]


def llm_error_message(exc: LLMError) -> tuple[str, str]:
    """The user-facing message and error id for an LLM failure (its detail after the kind)."""
    for kind, error_id, headline in _LLM_FAILURES:
        if isinstance(exc, kind):
            return f"{headline}. ({exc})", error_id
    return f"The LLM call failed. ({exc})", ERROR_LLM
