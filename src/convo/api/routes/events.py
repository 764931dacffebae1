"""/api/conversations/{id}/events: page through the event log, and send user events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from convo.api.deps import ManagerDep
from convo.api.routes.conversations import ConversationId
from convo.api.schemas import EventFilterBody, EventPage

router = APIRouter(prefix="/api/conversations", tags=["events"])


@router.get("/{conversation_id}/events", response_model=EventPage)
async def search_events(
    conversation_id: ConversationId,
    manager: ManagerDep,
    start_id: int = 0,
    end_id: int | None = None,
    reverse: bool = False,
    limit: int = 20,
    filter: Annotated[EventFilterBody | None, Body()] = None,  # OpenHands calls it so
) -> EventPage | JSONResponse:
    """As OpenHands: ``limit`` 0..100 (0 only says whether there are events), a negative
    ``start_id`` counts as 0, ``end_id`` is inclusive. ``filter``, OpenHands' EventFilter, is
    the request's JSON body (FastAPI reads a dataclass parameter there, even on a GET); the
    page and ``has_more`` count only the events it keeps."""
    if not 0 <= limit <= 100:
        return JSONResponse({"detail": "Invalid limit"}, status_code=400)
    events = await manager.events(
        conversation_id,
        start_id=max(start_id, 0),
        end_id=end_id,
        reverse=reverse,
        limit=limit + 1,
        keep=filter.to_filter() if filter is not None else None,
    )
    return EventPage(events=[e.to_wire() for e in events[:limit]], has_more=len(events) > limit)


@router.post("/{conversation_id}/events")
async def add_event(
    conversation_id: ConversationId,
    manager: ManagerDep,
    data: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    stored = await manager.send_user_event(conversation_id, data)
    return {"success": True, "id": stored.id}
