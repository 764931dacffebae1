"""Fixtures shared by the security tests that run a real app in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM
from tests.api.conftest import RunningServer, make_settings, serve

ServerFactory = Callable[..., AbstractAsyncContextManager[RunningServer]]


@pytest.fixture
def server_factory(tmp_path: Path) -> ServerFactory:
    """A real app over HTTP on a tmp data dir, with a scripted LLM and extra settings."""

    @asynccontextmanager
    async def factory(
        llm: ScriptedLLM | None = None, **settings: Any
    ) -> AsyncIterator[RunningServer]:
        chosen = llm or ScriptedLLM()
        overrides = Overrides(llm_factory=lambda _config: chosen)
        async with serve(make_settings(tmp_path, **settings), overrides) as server:
            yield server

    return factory
