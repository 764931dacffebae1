"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

It answers ``POST /v1/chat/completions`` (and ``/chat/completions``) from a script of steps,
in order: a tool call, a plain text answer or an HTTP error, each optionally after a delay.
When the script is exhausted it answers with the ``when_exhausted`` step (e.g. ``finish``,
for benchmarks that loop), or with HTTP 500. The last ``max_requests`` request bodies are
kept (``requests``), so a long benchmark does not grow without bound.

One cursor, or one per conversation. By default the steps are served in the order requests
arrive, whoever sends them. Many conversations at once each follow their own script instead:

- a request whose first user message holds a marker ``[script:NAME]`` follows the named
  script of ``scripts``;
- with ``per_conversation=True`` (or a marker) the step is chosen by the number of assistant
  messages in the request: a conversation's first request gets step 0, the request after
  its first answer step 1, and so on. A request repeated after a crash gets the same step.
  (A condensed history shows fewer answers: turn condensation off for long scripts.)

In-process::

    async with ScriptedLLMServer([tool_call("finish", {"message": "hi"})], api_key="k") as server:
        server.base_url  # http://127.0.0.1:PORT/v1

As a subprocess (prints ``listening on <base_url>`` once ready, stops on SIGTERM/SIGINT)::

    python -m convo.llm.scripted_server --port 0 --script script.json [--api-key k]

The script file's format and the steps: :mod:`convo.llm.scripted_server_script`; the ASGI
app, served here by uvicorn: :mod:`convo.llm.scripted_server_app`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from convo.aio import cancel_and_await
from convo.llm.scripted_server_app import MAX_REQUESTS, ScriptedApp
from convo.llm.scripted_server_script import FINISH, Script, ScriptStep, load_script, load_scripts

SHUTDOWN_TIMEOUT_SECONDS = 5.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the host process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)  # connections queue from now on, even before uvicorn accepts them
    return sock


def _config(app: ScriptedApp) -> uvicorn.Config:
    return uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )


class ScriptedLLMServer:
    """The scripted server running inside the current event loop; an async context manager."""

    def __init__(
        self,
        script: Sequence[ScriptStep],
        *,
        api_key: str | None = None,
        when_exhausted: ScriptStep | None = None,
        port: int = 0,
        scripts: Mapping[str, Script] | None = None,
        per_conversation: bool = False,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self.app = ScriptedApp(
            script,
            api_key=api_key,
            when_exhausted=when_exhausted,
            scripts=scripts,
            per_conversation=per_conversation,
            max_requests=max_requests,
        )
        self._port = port
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last ``max_requests`` request bodies that passed the key check, in order."""
        return list(self.app.requests)

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("The scripted server is not started")
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        self._socket = _bind(self._port)
        self._server = _EmbeddedServer(_config(self.app))
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name=f"scripted-llm-server:{self.port}"
        )
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raises the startup failure
                raise RuntimeError("The scripted server stopped during startup")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self.app.closing.set()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), SHUTDOWN_TIMEOUT_SECONDS)
        except TimeoutError:
            self._server.force_exit = True
            await cancel_and_await(self._task)
        finally:
            if self._socket is not None:
                self._socket.close()
            self._server = None
            self._task = None

    async def __aenter__(self) -> ScriptedLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", type=Path, help="JSON script; none means only when-exhausted")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument(
        "--loop-finish",
        action="store_true",
        help="answer finish once the script is exhausted (default when no script)",
    )
    args = parser.parse_args(argv)
    steps, exhausted = load_script(args.script) if args.script else ([], None)
    scripts, per_conversation = load_scripts(args.script) if args.script else ({}, False)
    if exhausted is None and (args.loop_finish or not args.script):
        exhausted = FINISH
    app = ScriptedApp(
        steps,
        api_key=args.api_key,
        when_exhausted=exhausted,
        scripts=scripts,
        per_conversation=per_conversation,
    )
    sock = _bind(args.port)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    uvicorn.Server(_config(app)).run(sockets=[sock])  # handles SIGTERM/SIGINT itself


if __name__ == "__main__":
    main()
