"""Which server a client command talks to.

``--server URL`` if given; else the server recorded as running on the data dir
(``<data dir>/server.json``); else an embedded server on that data dir, started here on a
free 127.0.0.1 port and stopped when the command ends. ``--demo`` and ``--model`` choose the
model of an embedded server; a running server keeps its own settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from convo.cli import server_file
from convo.cli.client import ConvoClient, ServerUnreachable
from convo.cli.errors import CliError
from convo.config import Settings
from convo.llm.base import LLMClient, LLMClientFactory, LLMConfig
from convo.llm.demo import DEMO_MODEL


def _session_key(settings: Settings) -> str | None:
    key = settings.session_api_key
    return key.get_secret_value() if key is not None else None


def forced_model_factory(model: str) -> LLMClientFactory:
    """The server's usual LLM choice, for ``model`` whatever the saved settings say."""
    from convo.llm.select import LLMClients

    base = LLMClients()

    def make(config: LLMConfig) -> LLMClient:
        return base(dataclasses.replace(config, model=model))

    return make


async def _existing(url: str, settings: Settings, model: str | None) -> ConvoClient:
    client = ConvoClient(url, _session_key(settings))
    if not await client.alive():
        await client.aclose()
        raise ServerUnreachable(url, "no answer on /alive")
    if model is not None:
        current = (await client.settings()).get("llm_model")
        if current != model:
            await client.aclose()
            raise CliError(
                f"the convo server at {url} uses its own model ({current or 'none'}); "
                f"--demo and --model apply to a server this command starts: drop --server, "
                f"or stop that server (or start it with CONVO_LLM_MODEL={model})"
            )
    return client


@asynccontextmanager
async def connect(
    settings: Settings,
    server: str | None,
    *,
    model: str | None = None,
) -> AsyncIterator[ConvoClient]:
    """A client for the chosen server; ``model`` (``demo`` for --demo) forces the model."""
    if server is None:
        running = server_file.running_server(settings.resolved_data_dir())
        server = running.url if running is not None else None
    if server is not None:
        client = await _existing(server, settings, model)
        async with client:
            yield client
        return
    from convo.api.app import Overrides
    from convo.cli.server import EmbeddedServer

    overrides = None
    if model is not None:
        settings = settings.model_copy(update={"llm_model": model})
        overrides = Overrides(llm_factory=forced_model_factory(model))
    embedded = EmbeddedServer(settings, overrides)
    try:
        url = await embedded.start()
        async with ConvoClient(url, _session_key(settings)) as client:
            client.owned_server = True
            yield client
    finally:
        await embedded.stop()


def model_option(demo: bool, model: str | None) -> str | None:
    if demo and model not in (None, DEMO_MODEL):
        raise CliError("--demo and --model name two different models: give one of them")
    return DEMO_MODEL if demo else model
