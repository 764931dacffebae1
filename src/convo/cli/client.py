"""ConvoClient: the terminal client's thin HTTP client for a convo server (httpx + SSE).

Every failure to talk to the server becomes a :class:`ServerUnreachable` or an
:class:`ApiError` carrying the server's own message, so commands print one line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from convo.cli.errors import CliError, ExitCode


class ServerUnreachable(CliError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            f"cannot reach the convo server at {url} ({detail}); start one with `convo serve` "
            "or drop --server to let the command start its own",
            ExitCode.UNREACHABLE,
        )


class ApiError(CliError):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message, ExitCode.ERROR)
        self.status_code = status_code


@dataclass(frozen=True)
class StreamMessage:
    """One SSE message: ``kind`` is event, error, status_update or resume."""

    kind: str
    data: dict[str, Any]
    event_id: int | None


def _message_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:300]


class ConvoClient:
    def __init__(self, base_url: str, session_api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.owned_server = False  # True: the server was started for this command alone
        headers = {"X-Session-API-Key": session_api_key} if session_api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(30.0, connect=5.0),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ConvoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc
        if response.status_code == 401:
            raise ApiError(
                401, "the server needs a session key: set CONVO_SESSION_API_KEY to its key"
            )
        if response.status_code == 404 and "/api/conversations/" in path:
            raise ApiError(404, f"no conversation {path.split('/')[3]} on {self.base_url}")
        if response.status_code >= 400:
            raise ApiError(response.status_code, _message_of(response))
        return response.json()

    async def alive(self) -> bool:
        try:
            response = await self._http.get("/alive", timeout=3.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/health")
        return result

    async def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/api/settings")
        return result

    async def create(self, task: str, repository: str | None = None) -> str:
        body: dict[str, Any] = {"initial_user_msg": task}
        if repository:
            body["repository"] = repository
        result = await self._request("POST", "/api/conversations", json=body)
        return str(result["conversation_id"])

    async def list(self, limit: int = 100) -> list[dict[str, Any]]:
        result = await self._request("GET", "/api/conversations", params={"limit": limit})
        return list(result.get("results") or [])

    async def get(self, conversation_id: str) -> dict[str, Any]:
        result = await self._request("GET", f"/api/conversations/{conversation_id}")
        if result is None:
            raise ApiError(404, f"no conversation {conversation_id} on {self.base_url}")
        return dict(result)

    async def stop(self, conversation_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST", f"/api/conversations/{conversation_id}/stop"
        )
        return result

    async def delete(self, conversation_id: str) -> bool:
        return bool(await self._request("DELETE", f"/api/conversations/{conversation_id}"))

    async def latest_event_id(self, conversation_id: str) -> int:
        """The id of the conversation's newest stored event; -1 when it has none."""
        page = await self._request(
            "GET",
            f"/api/conversations/{conversation_id}/events",
            params={"reverse": "true", "limit": 1},
        )
        events = page.get("events") or []
        return int(events[0]["id"]) if events else -1

    async def stream(self, conversation_id: str, after: int) -> AsyncIterator[StreamMessage]:
        """The conversation's events after ``after``, then live; ends when the server ends it."""
        path = f"/api/conversations/{conversation_id}/events/stream"
        timeout = httpx.Timeout(30.0, connect=5.0, read=None)
        try:
            async with aconnect_sse(
                self._http, "GET", path, params={"after": after}, timeout=timeout
            ) as source:
                if source.response.status_code >= 400:
                    await source.response.aread()
                    raise ApiError(source.response.status_code, _message_of(source.response))
                async for sse in source.aiter_sse():
                    if not sse.data:
                        continue
                    data = json.loads(sse.data)
                    event_id = int(sse.id) if sse.id else None
                    yield StreamMessage(sse.event, data, event_id)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc
