"""What the Socket.IO stream sends of a conversation's events, as OpenHands' server does.

- Replayed on connect (stored before the client joined): no ``null`` action or observation,
  no ``recall`` action, and of the ``agent_state_changed`` observations only the last (the
  state the conversation is in). OpenHands sends that last one after the replay; convo sends
  it in its place, so event ids only grow and a reconnect resumes without repeats.
- Live: no ``null`` events; the environment's ``run``, ``agent_state_changed``, ``recall`` and
  ``error`` observations are relabelled ``source: "agent"`` (the web client shows the
  environment's answers to agent actions as the agent's).

Everything else goes out as stored. ``GET /events``, the trajectory and the SSE stream keep
every event and its stored source.
"""

from __future__ import annotations

from typing import Any

from convo.domain.events import ActionType, EventSource, ObservationType
from convo.storage.base import EventStore

Payload = dict[str, Any]

_RELABELLED = frozenset(
    {
        ObservationType.RUN,
        ObservationType.AGENT_STATE_CHANGED,
        ObservationType.RECALL,
        ObservationType.ERROR,
    }
)
_SCAN_PAGE = 100


class SocketView:
    """The socket's view of one connection's feed: ``shape`` each payload in order."""

    def __init__(self, replay_until: int, last_state_id: int) -> None:
        self.replay_until = replay_until  # events up to this id are a replay
        self.last_state_id = last_state_id  # the replay's last agent_state_changed

    @classmethod
    async def open(cls, store: EventStore, conversation_id: str) -> SocketView:
        """The view for a client joining now."""
        last = await store.last_id(conversation_id)
        return cls(last, await _last_state_id(store, conversation_id, last))

    def shape(self, payload: Payload) -> Payload | None:
        """The payload as the client gets it, or None if it is not sent."""
        action, observation = payload.get("action"), payload.get("observation")
        if action == ActionType.NULL or observation == ObservationType.NULL:
            return None
        event_id = payload.get("id")
        if isinstance(event_id, int) and event_id <= self.replay_until:
            if action == ActionType.RECALL:
                return None
            if observation == ObservationType.AGENT_STATE_CHANGED:
                return payload if event_id >= self.last_state_id else None
            return payload
        if payload.get("source") == EventSource.ENVIRONMENT and observation in _RELABELLED:
            return {**payload, "source": EventSource.AGENT.value}
        return payload


async def _last_state_id(store: EventStore, conversation_id: str, last: int) -> int:
    """The id of the last ``agent_state_changed`` stored up to ``last`` (-1 if none)."""
    end = last
    while end >= 0:
        page = await store.list(conversation_id, end_id=end, limit=_SCAN_PAGE, reverse=True)
        for event in page:
            if event.observation == ObservationType.AGENT_STATE_CHANGED:
                return event.id
        if len(page) < _SCAN_PAGE:
            return -1
        end = page[-1].id - 1
    return -1
