"""InputGuard: the ASGI middleware that turns bad requests away before any route sees them.

- **Body size.** A body larger than ``CONVO_MAX_REQUEST_BYTES`` (``CONVO_MAX_UPLOAD_BYTES``
  for ``multipart/form-data``) is answered 413: at once when ``Content-Length`` says so,
  without reading the body; otherwise as soon as the bytes received pass the limit.
- **Paths and query strings.** NUL or bytes that are not UTF-8 once percent-decoded: 400.
  A query value that is an integer outside the signed 64-bit range: 422 (no column or
  offset can hold it).
- **JSON bodies** (``application/json``, ``*+json`` or no content type, as FastAPI reads
  them): invalid UTF-8, invalid JSON, nesting deeper than 64, ``NaN``/``Infinity``, a string
  holding NUL or a lone UTF-16 surrogate, an integer outside the signed 64-bit range: 422 in
  FastAPI's validation shape ``{"detail": [{"type", "loc", "msg", "input"}]}``. The body
  checked is the one handed on to the route, read once.

Only ``/api`` and the other FastAPI routes pass here; Socket.IO has its own buffer limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_JSON_DEPTH = 64
LINGER_SECONDS = 10.0
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_INTEGER = re.compile(rb"[+-]?[0-9]+")


class _Refused(Exception):
    def __init__(self, status: int, detail: object) -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail


def _validation_error(kind: str, loc: list[str | int], msg: str, value: object) -> _Refused:
    shown = value if isinstance(value, int | float | type(None)) else repr(value)[:100]
    return _Refused(422, [{"type": kind, "loc": loc, "msg": msg, "input": shown}])


class InputGuard:
    def __init__(self, app: ASGIApp, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        limit = (
            self.max_upload_bytes
            if content_type == b"multipart/form-data"
            else self.max_request_bytes
        )
        body_read = False
        try:
            _check_url(scope)
            _check_declared_length(headers, limit)
            if _is_json(content_type) and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
                body = await _read_body(receive, limit)
                body_read = True
                _check_json(body)
                receive = _replay(body)
        except _Refused as refused:
            # a client waiting for "100 Continue" sends no body: there is nothing to drop
            expects = headers.get(b"expect", b"").lower() == b"100-continue"
            await _answer(send, refused, None if body_read or expects else receive)
            return
        await self._pass_on(scope, receive, send, limit)

    async def _pass_on(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app, counting the body it reads; past the limit its response becomes 413."""
        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # the app's answer to a cut-off body is replaced by the 413 below
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise  # the route's failure, not ours to hide
        if too_large and not started:
            await _answer(send, _too_large(limit), receive)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _is_json(content_type: bytes) -> bool:
    return content_type in (b"", b"application/json") or content_type.endswith(b"+json")


def _too_large(limit: int) -> _Refused:
    return _Refused(413, f"Request body too large: at most {limit} bytes are accepted")


def _check_declared_length(headers: dict[bytes, bytes], limit: int) -> None:
    declared = headers.get(b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)


def _check_url(scope: Scope) -> None:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
    _check_text_bytes(unquote_to_bytes(raw_path), "path")
    query: bytes = scope.get("query_string", b"")
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        decoded_name = _check_text_bytes(unquote_to_bytes(name.replace(b"+", b" ")), "query")
        decoded = unquote_to_bytes(value.replace(b"+", b" "))
        _check_text_bytes(decoded, "query")
        if _INTEGER.fullmatch(decoded.strip()) and not INT64_MIN <= int(decoded) <= INT64_MAX:
            raise _validation_error(
                "int_out_of_range",
                ["query", decoded_name],
                "Input should be an integer between -2^63 and 2^63-1",
                decoded.decode(),
            )


def _check_text_bytes(data: bytes, where: str) -> str:
    if b"\x00" in data:
        raise _Refused(400, f"The request {where} contains a NUL character")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, f"The request {where} is not valid UTF-8") from None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _refuse_constant(name: str) -> float:
    raise _validation_error(
        "finite_number", ["body"], "Input should be a finite number (not NaN or Infinity)", name
    )


def _check_json(body: bytes) -> None:
    if not body.strip():
        return  # FastAPI answers a missing body itself
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _validation_error(
            "json_invalid", ["body", exc.start], "JSON decode error: invalid UTF-8", ""
        ) from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise _validation_error(
            "json_invalid", ["body", exc.pos], f"JSON decode error: {exc.msg}", ""
        ) from None
    except RecursionError:
        raise _validation_error("json_invalid", ["body"], "JSON nested too deeply", "") from None
    _check_values(data)


def _check_values(data: object) -> None:
    """Walk the document (without recursion) for values no route may receive."""
    stack: list[tuple[object, list[str | int]]] = [(data, ["body"])]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_JSON_DEPTH:
            raise _validation_error("json_invalid", loc[:3], "JSON nested too deeply", "")
        if isinstance(value, str):
            _check_string(value, loc)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise _validation_error(
                "int_out_of_range", loc, "Input should be an integer between -2^63 and 2^63-1", 0
            )
        elif isinstance(value, float) and not math.isfinite(value):  # e.g. 1e999
            raise _validation_error("finite_number", loc, "Input should be a finite number", 0)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_string(key, loc)
                stack.append((item, [*loc, key]))
        elif isinstance(value, list):
            stack.extend((item, [*loc, index]) for index, item in enumerate(value))


def _check_string(value: str, loc: list[str | int]) -> None:
    if "\x00" in value:
        raise _validation_error("string_nul", loc, "String should not contain NUL", value)
    if _LONE_SURROGATE.search(value):
        raise _validation_error(
            "string_unicode", loc, "String should not contain a lone UTF-16 surrogate", value
        )


async def _answer(send: Send, refused: _Refused, receive: Receive | None = None) -> None:
    """Send the refusal. With ``receive``, the rest of the request body is then read and
    dropped (for ``LINGER_SECONDS`` at most) before the response ends: a client still sending
    it would otherwise get a connection reset instead of the answer (nginx's lingering
    close). Nothing of it is kept."""
    body = json.dumps({"detail": refused.detail}, ensure_ascii=True).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": receive is not None})
    if receive is None:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
    await send({"type": "http.response.body", "body": b""})
