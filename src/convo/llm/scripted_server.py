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

The script file is ``{"steps": [...], "when_exhausted": step | null, "per_conversation": bool,
"scripts": {"NAME": {"steps": [...], "when_exhausted": step | null}}}`` or a bare list of
steps; a step is ``{"tool": name, "arguments": {...}}``, ``{"text": "..."}`` or
``{"error": 401, "message": "..."}``, each with an optional ``"delay": seconds``.

The app is a hand-written ASGI callable served by uvicorn (no web framework).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import uvicorn

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SHUTDOWN_TIMEOUT_SECONDS = 5.0
MAX_REQUESTS = 1000  # request bodies kept
_MARKER = re.compile(r"\[script:([\w.-]+)\]")


@dataclass(frozen=True)
class ScriptStep:
    """One scripted answer. Build with :func:`tool_call`, :func:`text` or :func:`http_error`."""

    kind: Literal["tool_call", "text", "error"]
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    content: str | None = None
    status: int = 200
    delay_seconds: float = 0.0


def tool_call(
    name: str,
    arguments: dict[str, Any] | None = None,
    *,
    content: str | None = None,
    delay: float = 0.0,
) -> ScriptStep:
    return ScriptStep(
        "tool_call", name=name, arguments=arguments or {}, content=content, delay_seconds=delay
    )


def text(content: str, *, delay: float = 0.0) -> ScriptStep:
    return ScriptStep("text", content=content, delay_seconds=delay)


def http_error(status: int, message: str = "", *, delay: float = 0.0) -> ScriptStep:
    return ScriptStep(
        "error", status=status, content=message or f"Scripted error {status}", delay_seconds=delay
    )


FINISH = tool_call("finish", {"message": "Done."})


def step_from_json(data: dict[str, Any]) -> ScriptStep:
    delay = float(data.get("delay", 0.0))
    if "tool" in data:
        return tool_call(
            str(data["tool"]),
            dict(data.get("arguments", {})),
            content=data.get("content"),
            delay=delay,
        )
    if "text" in data:
        return text(str(data["text"]), delay=delay)
    if "error" in data:
        return http_error(int(data["error"]), str(data.get("message", "")), delay=delay)
    raise ValueError(f"Unknown script step: {data!r}")


@dataclass(frozen=True)
class Script:
    """The steps of one conversation's script and the step once they run out."""

    steps: Sequence[ScriptStep]
    when_exhausted: ScriptStep | None = None

    def step(self, index: int) -> ScriptStep | None:
        return self.steps[index] if index < len(self.steps) else self.when_exhausted


def script_from_json(data: Any) -> Script:
    if isinstance(data, list):
        return Script([step_from_json(s) for s in data])
    exhausted = data.get("when_exhausted")
    return Script(
        [step_from_json(s) for s in data.get("steps", [])],
        step_from_json(exhausted) if exhausted else None,
    )


def load_script(path: Path) -> tuple[list[ScriptStep], ScriptStep | None]:
    """Read a script file; returns the steps and the step used once they run out."""
    script = script_from_json(json.loads(path.read_text()))
    return list(script.steps), script.when_exhausted


def load_scripts(path: Path) -> tuple[dict[str, Script], bool]:
    """A script file's named scripts and whether it counts steps per conversation."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return {}, False
    named = {str(k): script_from_json(v) for k, v in (data.get("scripts") or {}).items()}
    return named, bool(data.get("per_conversation", False))


def script_name(request: dict[str, Any]) -> str | None:
    """The ``[script:NAME]`` marker of the request's first user message, if any."""
    for message in request.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            found = _MARKER.search(json.dumps(message.get("content")))
            return found.group(1) if found else None
    return None


def assistant_turns(request: dict[str, Any]) -> int:
    """How many answers the conversation has had: its assistant messages."""
    return sum(
        1
        for message in request.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "assistant"
    )


# --- OpenAI-shaped bodies ------------------------------------------------------------------
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}
_ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "server_error"),
            "param": None,
            "code": _ERROR_CODES.get(status),
        }
    }


def completion_body(step: ScriptStep, number: int, request: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.content}
    finish_reason = "stop"
    if step.kind == "tool_call":
        message["tool_calls"] = [
            {
                "id": f"call_scripted_{number}",
                "type": "function",
                "function": {"name": step.name, "arguments": json.dumps(step.arguments)},
            }
        ]
        finish_reason = "tool_calls"
    prompt_tokens = max(1, len(json.dumps(request.get("messages", []))) // 4)
    completion_tokens = max(1, len(json.dumps(message)) // 4)
    return {
        "id": f"chatcmpl-scripted-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.get("model", "scripted")),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# --- the ASGI app ----------------------------------------------------------------------------
class ScriptedApp:
    """The ASGI callable: routes, auth, the script cursors and the request log."""

    def __init__(
        self,
        steps: Sequence[ScriptStep],
        *,
        api_key: str | None,
        when_exhausted: ScriptStep | None,
        scripts: Mapping[str, Script] | None = None,
        per_conversation: bool = False,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self.steps = list(steps)
        self.api_key = api_key
        self.when_exhausted = when_exhausted
        self.scripts = dict(scripts or {})
        self.per_conversation = per_conversation
        self.requests: deque[dict[str, Any]] = deque(maxlen=max_requests)
        self.served = 0  # requests answered from a script (or refused as past its end)
        self._shared = 0  # of them, those that followed the shared cursor
        self.closing = asyncio.Event()  # set on shutdown: cuts delays short

    def _next_step(self, request: dict[str, Any]) -> ScriptStep | None:
        self.served += 1
        name = script_name(request)
        if name is not None and name in self.scripts:
            return self.scripts[name].step(assistant_turns(request))
        default = Script(self.steps, self.when_exhausted)
        if self.per_conversation or name is not None:
            return default.step(assistant_turns(request))
        self._shared += 1
        return default.step(self._shared - 1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        body = await _read_body(receive)
        status, payload = await self._handle(scope, body)
        raw = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    async def _handle(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]]:
        path = str(scope["path"]).rstrip("/")
        if scope["method"] == "GET" and path in ("/v1/models", "/models"):
            return 200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
        if path not in ("/v1/chat/completions", "/chat/completions"):
            return 404, error_body(404, f"Unknown path {path}")
        if scope["method"] != "POST":
            return 405, error_body(405, "Use POST")
        if self.api_key is not None and _bearer(scope) != self.api_key:
            return 401, error_body(401, "Incorrect API key provided.")
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return 400, error_body(400, "Request body is not JSON")
        if not isinstance(request, dict):
            return 400, error_body(400, "Request body must be a JSON object")
        self.requests.append(request)
        if request.get("stream"):
            return 400, error_body(400, "The scripted server does not support stream=true")
        step = self._next_step(request)
        number = self.served
        if step is None:
            return 500, error_body(500, "The script is exhausted")
        if step.delay_seconds:
            with contextlib.suppress(TimeoutError):  # the delay elapsed: answer
                await asyncio.wait_for(self.closing.wait(), step.delay_seconds)
            if self.closing.is_set():
                return 503, error_body(503, "The scripted server is shutting down")
        if step.kind == "error":
            return step.status, error_body(step.status, step.content or "")
        return 200, completion_body(step, number, request)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


# --- serving ----------------------------------------------------------------------------------
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
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
