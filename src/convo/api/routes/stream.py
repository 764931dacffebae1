"""GET /api/conversations/{id}/events/stream: the event log as Server-Sent Events.

Replays the events after ``Last-Event-ID`` (or ``?after=``), then follows live. Each stored
event is one SSE message whose ``id`` is its event id, so a browser ``EventSource`` resumes
by itself without a gap; status updates carry no ``id``. When idle, a comment line keeps the
connection open. A client too slow to keep up gets a final ``resume`` event naming the id to
resume after, and the stream ends: memory per client is bounded by the feed's queue.

    curl -N -H 'Last-Event-ID: 41' localhost:3000/api/conversations/$ID/events/stream
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from convo.api.deps import ManagerDep
from convo.api.routes.conversations import ConversationId
from convo.services.streams import EventFeed, FeedEnd, StreamOptions, event_id_of

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/conversations", tags=["events"])

SSE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # proxies must not buffer a live stream
}


def format_sse(data: Any, *, event: str, event_id: int | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    text = json.dumps(data, separators=(",", ":"))
    lines.extend(f"data: {part}" for part in text.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


def _kind(payload: dict[str, Any]) -> str:
    if payload.get("status_update"):
        return "status_update"
    if payload.get("error") is True:
        return "error"
    return "event"


def _resume_after(last_event_id: str | None, after: int | None) -> int | None:
    """The id to replay after; None when the client gave something unreadable."""
    if after is not None:
        return after
    if last_event_id is None or not last_event_id.strip():
        return -1
    try:
        return int(last_event_id.strip())
    except ValueError:
        return None


async def _events(feed: EventFeed, keepalive: float) -> AsyncIterator[str]:
    try:
        # an opening comment flushes the headers and tells the client it is connected
        yield f": following from event {feed.last_event_id}\n\n"
        while not isinstance(payload := await feed.next(idle_timeout=keepalive), FeedEnd):
            if payload is None:
                yield ": keep-alive\n\n"
                continue
            yield format_sse(payload, event=_kind(payload), event_id=event_id_of(payload))
        if feed.fell_behind:
            resume = feed.last_event_id
            body = {
                "last_event_id": resume,
                "message": f"Fell too far behind: reconnect with Last-Event-ID: {resume}",
            }
            yield format_sse(body, event="resume")
    finally:
        feed.close()


@router.get("/{conversation_id}/events/stream", response_model=None)
async def stream_events(
    conversation_id: ConversationId,
    request: Request,
    manager: ManagerDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int | None, Query(ge=-1)] = None,
) -> StreamingResponse | JSONResponse:
    resume_after = _resume_after(last_event_id, after)
    if resume_after is None:
        return JSONResponse({"detail": "Last-Event-ID must be an event id"}, status_code=400)
    await manager.get_metadata(conversation_id)  # 404 for an unknown conversation
    options: StreamOptions = request.app.state.stream_options
    feed = manager.open_feed(conversation_id, resume_after, options)  # counted from here on
    return StreamingResponse(
        _events(feed, options.keepalive_seconds),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(feed.close),  # also when the body never started
    )
