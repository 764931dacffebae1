"""Helpers for the live-stream and API tests: a fake sandbox factory, a slow scripted LLM,
Socket.IO clients that remember what they saw, and an SSE line reader."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import socketio

from convo.llm.base import LLMResponse
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.runtime.base import CommandResult, SandboxSpec
from convo.runtime.fake import FakeSandbox


class FakeSandboxFactory:
    """Gives each conversation a FakeSandbox on its workspace; remembers the specs and the
    sandboxes."""

    name = "fake"

    def __init__(self, responses: dict[str, CommandResult] | None = None) -> None:
        self.specs: list[SandboxSpec] = []
        self.created: list[FakeSandbox] = []
        self.responses = responses or {}

    def create(self, spec: SandboxSpec) -> FakeSandbox:
        self.specs.append(spec)
        self.created.append(FakeSandbox(spec.workspace, responses=self.responses))
        return self.created[-1]


class SlowLLM(ScriptedLLM):
    """A ScriptedLLM that takes ``delay`` seconds per answer, so a task lasts a while."""

    def __init__(self, script: list[LLMResponse], delay: float) -> None:
        super().__init__(script)
        self.delay = delay

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        await asyncio.sleep(self.delay)
        return await super().complete(messages, tools)


def thinking_task(steps: int, finish: str = "done") -> list[LLMResponse]:
    """``steps`` distinct commands (a FakeSandbox answers them), then finish: 2 events a step."""
    script = [tool_response("execute_bash", {"command": f"echo step {i}"}) for i in range(steps)]
    script.append(tool_response("finish", {"message": finish}))
    return script


def ids_of(payloads: list[dict[str, Any]]) -> list[int]:
    return [
        p["id"] for p in payloads if isinstance(p.get("id"), int) and not p.get("status_update")
    ]


@dataclass
class SocketClient:
    """A python-socketio client that records every ``oh_event`` and connect error."""

    base_url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    connect_errors: list[Any] = field(default_factory=list)
    sio: socketio.AsyncClient = field(
        default_factory=lambda: socketio.AsyncClient(reconnection=False)
    )

    def __post_init__(self) -> None:
        self.sio.on("oh_event", self._on_event)
        self.sio.on("connect_error", self._on_connect_error)

    async def _on_event(self, data: dict[str, Any]) -> None:
        self.events.append(data)

    async def _on_connect_error(self, data: Any) -> None:
        self.connect_errors.append(data)

    @property
    def last_event_id(self) -> int:
        ids = ids_of(self.events)
        return ids[-1] if ids else -1

    async def connect(
        self, conversation_id: str, latest_event_id: int | None = None, **query: str
    ) -> None:
        params = {"conversation_id": conversation_id, **query}
        if latest_event_id is not None:
            params["latest_event_id"] = str(latest_event_id)
        await self.connect_query("&".join(f"{k}={v}" for k, v in params.items()))

    async def connect_query(self, query: str) -> None:
        """Connect with ``query`` as the query string, exactly as given (as the web client
        builds it)."""
        await self.sio.connect(
            f"{self.base_url}?{query}",
            transports=["websocket"],
            socketio_path="socket.io",
            wait_timeout=10,
        )

    @property
    def agent_state(self) -> str | None:
        """The agent state of the last ``agent_state_changed`` event received, if any."""
        states = [
            e["extras"]["agent_state"]
            for e in self.events
            if e.get("observation") == "agent_state_changed"
        ]
        return states[-1] if states else None

    def answer_to(self, action_id: int) -> dict[str, Any] | None:
        """The first event received that the action ``action_id`` caused, if any."""
        return next((e for e in self.events if e.get("cause") == action_id), None)

    async def disconnect(self) -> None:
        await self.sio.disconnect()


async def read_sse(lines: Any, until: Any, timeout: float = 15) -> list[dict[str, Any]]:
    """Parse SSE messages from an async line iterator until ``until(messages)`` is true.

    Each message: {"id": str | None, "event": str, "data": str} or {"comment": str}."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        async for line in lines:
            if line == "":
                if current:
                    messages.append(current)
                    current = {}
                    if until(messages):
                        return messages
                continue
            if line.startswith(":"):
                messages.append({"comment": line[1:].strip()})
                if until(messages):
                    return messages
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[key] = current[key] + "\n" + value if key in current else value
    return messages
