"""API fixtures: a real uvicorn server on 127.0.0.1 serving create_app(settings)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from convo.api.app import Overrides, create_asgi_app, fastapi_app
from convo.config import Settings
from tests.polling import wait_until


@dataclass
class RunningServer:
    base_url: str
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def manager(self) -> Any:
        return self.app.state.manager


@asynccontextmanager
async def serve(
    settings: Settings, overrides: Overrides | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[RunningServer]:
    asgi_app = create_asgi_app(settings, overrides)
    app = fastapi_app(asgi_app)
    config = uvicorn.Config(asgi_app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(), name="test-uvicorn")
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        task.cancel()
        raise RuntimeError("server did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers or {}, timeout=30
        ) as client:
            yield RunningServer(base_url, app, client)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "llm_model": "openai/scripted",
        "llm_api_key": "test-key",
        "llm_base_url": "http://127.0.0.1:9/v1",
        "runtime": "process",
        "command_timeout_seconds": 20,
    }
    values.update(overrides)
    return Settings(**values)


ServeFactory = Callable[..., AbstractAsyncContextManager[RunningServer]]


@pytest.fixture
def server_factory(tmp_path: Path) -> ServeFactory:
    def factory(
        overrides: Overrides | None = None, headers: dict[str, str] | None = None, **settings: Any
    ) -> AbstractAsyncContextManager[RunningServer]:
        return serve(make_settings(tmp_path, **settings), overrides, headers)

    return factory


async def first_events(client: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's first 100 events, as ``GET .../events`` answers them."""
    page = await client.get(f"/api/conversations/{conversation_id}/events", params={"limit": 100})
    events: list[dict[str, Any]] = page.json()["events"]
    return events


async def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> None:
    """Poll an async or sync predicate until truthy; fail after timeout."""
    await wait_until(predicate, timeout, interval=0.05)
