"""The scripted LLM server's HTTP side: a hand-written ASGI callable (no web framework)
that checks the path and the key, keeps the request log, picks each request's step and
answers with OpenAI-shaped bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from convo.llm.scripted_server_script import Script, ScriptStep, assistant_turns, script_name

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_REQUESTS = 1000  # request bodies kept


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
