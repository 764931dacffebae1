"""A client that follows one conversation over HTTP through server kills and restarts.

It polls ``/events`` (what it received counts as acknowledged) and the conversation's status,
and remembers both. Connection errors while the server is down are expected and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.polling import wait_until


@dataclass
class Observer:
    base_url: str
    conversation_id: str
    received: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: list[tuple[float, str]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="crash-test-observer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    await self.poll(client)
                await asyncio.sleep(0.02)

    async def poll(self, client: httpx.AsyncClient) -> None:
        info = await client.get(f"/api/conversations/{self.conversation_id}")
        if info.status_code == 200 and info.json():
            self.statuses.append((time.monotonic(), info.json()["status"]))
        start = max(self.received, default=-1) + 1
        while True:
            page = await client.get(
                f"/api/conversations/{self.conversation_id}/events",
                params={"start_id": start, "limit": 100},
            )
            if page.status_code != 200:
                return
            body = page.json()
            for event in body["events"]:
                self.received[event["id"]] = event
            if not body["has_more"] or not body["events"]:
                return
            start = body["events"][-1]["id"] + 1

    # --- what was seen ---------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        return [self.received[i] for i in sorted(self.received)]

    def commands(self) -> list[str]:
        return [str(e["args"]["command"]) for e in self.events() if e.get("action") == "run"]

    def result_of(self, action_id: int) -> dict[str, Any] | None:
        for event in self.events():
            if event.get("cause") == action_id and event.get("observation"):
                return event
        return None

    def action_running(self, command: str) -> bool:
        """The action ``command`` was stored and its result was not (yet)."""
        for event in self.events():
            if event.get("action") == "run" and event["args"]["command"] == command:
                return self.result_of(event["id"]) is None
        return False

    def has_result_for(self, command: str) -> bool:
        for event in self.events():
            if event.get("action") == "run" and event["args"]["command"] == command:
                return self.result_of(event["id"]) is not None
        return False

    def finished(self) -> bool:
        return any(
            e.get("observation") == "agent_state_changed"
            and (e.get("extras") or {}).get("agent_state") == "finished"
            for e in self.events()
        )


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    await wait_until(predicate, timeout, what=what)


async def all_events(base_url: str, conversation_id: str) -> list[dict[str, Any]]:
    """Every stored event, read afresh."""
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        while True:
            start = events[-1]["id"] + 1 if events else 0
            page = await client.get(
                f"/api/conversations/{conversation_id}/events",
                params={"start_id": start, "limit": 100},
            )
            page.raise_for_status()
            body = page.json()
            events.extend(body["events"])
            if not body["has_more"]:
                return events
