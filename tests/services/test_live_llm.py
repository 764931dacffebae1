"""LiveLLM: a running loop's LLM follows the saved settings at each call."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from convo.errors import LLMNotConfigured, StorageError
from convo.llm.base import LLMConfig, LLMResponse
from convo.services.live_llm import LiveLLM


class Recorder:
    """A factory whose clients answer with the model they were built for."""

    def __init__(self) -> None:
        self.built: list[LLMConfig] = []

    def __call__(self, config: LLMConfig) -> Any:
        self.built.append(config)

        class Client:
            async def complete(self, messages: Any, tools: Any) -> LLMResponse:
                return LLMResponse(content=config.model)

        return Client()


async def test_a_changed_configuration_builds_a_new_client_before_the_call() -> None:
    first = LLMConfig(model="a", api_key=SecretStr("key-a"))
    current: list[LLMConfig | Exception | None] = [first]
    changes: list[LLMConfig | None] = []

    async def source() -> LLMConfig | None:
        value = current[0]
        if isinstance(value, Exception):
            raise value
        return value

    factory = Recorder()
    llm = LiveLLM(factory, source, first, changes.append)
    assert (await llm.complete([], [])).content == "a"
    assert (await llm.complete([], [])).content == "a"
    assert len(factory.built) == 1  # unchanged settings: the same client

    second = LLMConfig(model="b", base_url="http://127.0.0.1:9/v1", api_key=SecretStr("key-b"))
    current[0] = second
    assert (await llm.complete([], [])).content == "b"
    assert changes == [second] and llm.config == second

    current[0] = StorageError("database away")  # a failed read keeps what works
    assert (await llm.complete([], [])).content == "b"

    current[0] = None  # the model was removed everywhere
    with pytest.raises(LLMNotConfigured):
        await llm.complete([], [])
    assert changes == [second, None]
