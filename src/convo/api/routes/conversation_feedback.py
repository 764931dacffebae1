"""What the web client asks about one event or the whole conversation: ``remember-prompt``
(a prompt to record what an event taught in the repository's microagent) and
``submit-feedback`` (a rating of the conversation, kept on this server)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from convo.api.deps import ManagerDep
from convo.api.routes.conversations import ConversationId
from convo.services.feedback import Feedback
from convo.services.remember_prompt import write_prompt

router = APIRouter(prefix="/api/conversations", tags=["conversations"])

CONTEXT = 60  # events read on each side of the chosen one (state changes are skipped)


@router.get("/{conversation_id}/remember-prompt")
async def get_remember_prompt(
    conversation_id: ConversationId, event_id: int, manager: ManagerDep
) -> dict[str, Any]:
    """``{status: "success", prompt}``, written by the conversation owner's model from the
    events around ``event_id`` (``convo.services.remember_prompt``)."""
    metadata = await manager.get_metadata(conversation_id)
    events = await manager.events(
        conversation_id, start_id=max(event_id - CONTEXT, 0), end_id=event_id + CONTEXT
    )
    llm = await manager.llm_client(metadata.user_id)
    return {"status": "success", "prompt": await write_prompt(events, event_id, llm)}


class FeedbackBody(BaseModel):
    """What the web client's feedback form posts (its ``trajectory`` and ``token`` are not
    kept: the conversation's events are its trajectory)."""

    polarity: Literal["positive", "negative"]
    permissions: Literal["public", "private"] = "private"
    email: str = ""
    version: str = ""


@router.post("/{conversation_id}/submit-feedback")
async def submit_feedback(
    conversation_id: ConversationId, body: FeedbackBody, manager: ManagerDep
) -> dict[str, Any]:
    """Stored on this server only (``convo.services.feedback``); answered in the shape of
    OpenHands' sharing service, which the web client shows."""
    await manager.get_metadata(conversation_id)
    last = await manager.events(conversation_id, reverse=True, limit=1)
    feedback = Feedback(body.polarity, body.permissions, body.email, body.version)
    feedback_id = await manager.feedback.add(conversation_id, feedback, last[0].id if last else -1)
    return {
        "statusCode": 200,
        "body": {
            "message": "Thank you. Your feedback is stored on this convo server only; it is "
            "not shared with anyone.",
            "feedback_id": feedback_id,
            "password": "",
        },
    }
