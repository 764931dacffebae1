"""Wake-ups: hints one server gives all the others, so that they act before their next scan.

    wakeups.on_wakeup(lambda kind, body: scanner.poke())   # on every node
    wakeups.notify("lease_released", {"conversation_id": cid})

A wake-up is lossy by design: it may arrive late, twice or never (Redis down), so a node may
only use one to do sooner what its periodic scan of the store would do anyway (take over a
released lease, start a conversation that wants to run). ``notify`` never waits and never
raises; a node does not get its own wake-ups. Handlers run in the event loop and must not
block: they schedule work.

Kinds in use (the body is a JSON object; keep the names in this list):
- ``lease_released``: ``{"conversation_id"}``, a server let go of a running conversation
  (it is shutting down): another may take it over now.
- ``wants_running``: ``{"conversation_id"}``, a conversation should run and nobody owns it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

LEASE_RELEASED = "lease_released"
WANTS_RUNNING = "wants_running"

WakeupHandler = Callable[[str, dict[str, Any]], None]


class Wakeups(Protocol):
    def notify(self, kind: str, body: dict[str, Any]) -> None:
        """Tell every other server; returns at once, whatever Redis does."""

    def on_wakeup(self, handler: WakeupHandler) -> None:
        """Call ``handler(kind, body)`` for each wake-up another server sends."""

    async def aclose(self) -> None: ...


def deliver(handlers: list[WakeupHandler], kind: str, body: dict[str, Any]) -> None:
    for handler in handlers:
        try:
            handler(kind, body)
        except Exception:
            logger.exception("a %r wake-up handler failed", kind)


class LocalWakeupHub:
    """Servers in one process: ``hub.node(node_id)`` is one server's ``Wakeups``."""

    def __init__(self) -> None:
        self.nodes: dict[str, LocalWakeups] = {}

    def node(self, node_id: str) -> LocalWakeups:
        wakeups = LocalWakeups(self, node_id)
        self.nodes[node_id] = wakeups
        return wakeups


class LocalWakeups:
    """The in-process twin: delivers to the hub's other nodes, in the same call."""

    def __init__(self, hub: LocalWakeupHub, node_id: str) -> None:
        self._hub = hub
        self._node_id = node_id
        self._handlers: list[WakeupHandler] = []

    def notify(self, kind: str, body: dict[str, Any]) -> None:
        for node_id, other in list(self._hub.nodes.items()):
            if node_id != self._node_id:
                deliver(other._handlers, kind, dict(body))

    def on_wakeup(self, handler: WakeupHandler) -> None:
        self._handlers.append(handler)

    async def aclose(self) -> None:
        if self._hub.nodes.get(self._node_id) is self:
            del self._hub.nodes[self._node_id]
        self._handlers.clear()
