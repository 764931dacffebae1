"""ScriptedLLM: the in-process twin of an LLM client, for tests and demos.

It returns the scripted responses in order, raising the scripted exceptions in their turn,
and records every request it got.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from convo.errors import LLMError
from convo.llm.base import LLMResponse, LLMUsage, ToolCall

_call_numbers = itertools.count(1)


@dataclass(frozen=True)
class ScriptedRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]


def tool_response(
    name: str,
    arguments: dict[str, Any] | str | None = None,
    *,
    content: str | None = None,
    usage: LLMUsage | None = None,
    call_id: str | None = None,
) -> LLMResponse:
    """A response with one tool call; ``arguments`` as a dict, or raw text (to script bad JSON)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    number = next(_call_numbers)
    return LLMResponse(
        content=content,
        tool_calls=[ToolCall(id=call_id or f"call_{number}", name=name, arguments=raw)],
        usage=usage or LLMUsage(),
        response_id=f"scripted-{number}",
    )


def text_response(content: str, *, usage: LLMUsage | None = None) -> LLMResponse:
    return LLMResponse(
        content=content, usage=usage or LLMUsage(), response_id=f"scripted-{next(_call_numbers)}"
    )


class ScriptedLLM:
    """An ``LLMClient`` answering from a list of responses or exceptions, in order.

    Once the script runs out it answers ``when_exhausted`` if given, else raises LLMError.
    """

    def __init__(
        self,
        script: Iterable[LLMResponse | BaseException] = (),
        *,
        when_exhausted: LLMResponse | None = None,
    ) -> None:
        self.script: list[LLMResponse | BaseException] = list(script)
        self.when_exhausted = when_exhausted
        self.requests: list[ScriptedRequest] = []

    def add(self, *items: LLMResponse | BaseException) -> None:
        self.script.extend(items)

    @property
    def remaining(self) -> int:
        return len(self.script)

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> LLMResponse:
        self.requests.append(ScriptedRequest(copy.deepcopy(messages), copy.deepcopy(tools)))
        if not self.script:
            if self.when_exhausted is not None:
                return self.when_exhausted
            raise LLMError("The scripted LLM has no responses left")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item
