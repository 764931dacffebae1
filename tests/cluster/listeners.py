"""Clients that follow one conversation's live events on one node, as a browser would:
Server-Sent Events resumed with ``Last-Event-ID``, Socket.IO resumed with
``latest_event_id``. Each reconnects by itself whenever its stream ends or fails, and records
every event id in the order received, so a test can tell a gap or a repeat from a resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import socketio

RECONNECT_DELAY = 0.2


@dataclass
class Listener:
    base_url: str
    conversation_id: str
    ids: list[int] = field(default_factory=list)
    connects: int = 0
    _task: asyncio.Task[None] | None = None

    @property
    def last_id(self) -> int:
        return self.ids[-1] if self.ids else -1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"cluster-test-{type(self).__name__}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def received(self, event: dict[str, Any]) -> None:
        if isinstance(event.get("id"), int) and not event.get("status_update"):
            self.ids.append(event["id"])

    def has(self, last_id: int) -> bool:
        return last_id in self.ids

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.connects += 1
                await self.follow()
            await asyncio.sleep(RECONNECT_DELAY)

    async def follow(self) -> None:  # one connection, until it ends
        raise NotImplementedError


class SseListener(Listener):
    async def follow(self) -> None:
        url = f"/api/conversations/{self.conversation_id}/events/stream"
        timeout = httpx.Timeout(5, read=30)
        async with (
            httpx.AsyncClient(base_url=self.base_url, timeout=timeout) as client,
            client.stream("GET", url, headers={"Last-Event-ID": str(self.last_id)}) as response,
        ):
            if response.status_code != 200:
                return
            kind, data = "", ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    data += line.partition(":")[2].strip()
                elif line == "":
                    if kind == "event" and data:
                        self.received(json.loads(data))
                    if kind == "resume":
                        return  # fell behind: reconnect from the last id
                    kind, data = "", ""


class SocketListener(Listener):
    async def follow(self) -> None:
        sio = socketio.AsyncClient(reconnection=False)
        ended = asyncio.Event()

        async def on_event(data: dict[str, Any]) -> None:
            self.received(data)

        async def on_disconnect(*_args: Any) -> None:
            ended.set()

        sio.on("oh_event", on_event)
        sio.on("disconnect", on_disconnect)
        query = f"conversation_id={self.conversation_id}&latest_event_id={self.last_id}"
        try:
            await sio.connect(
                f"{self.base_url}?{query}",
                transports=["websocket"],
                socketio_path="socket.io",
                wait_timeout=10,
            )
            await ended.wait()
        finally:
            with contextlib.suppress(Exception):
                await sio.disconnect()
