"""Domain errors → HTTP status codes. The only module that knows both.

A storage outage (``StorageUnavailable``, ``StorageFull``) answers 503 with ``Retry-After``
and is logged once per outage (``StorageHealth``), not once per request.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from convo.errors import (
    ConversationNotFound,
    ConvoError,
    DiskNearlyFull,
    InvalidConversationId,
    LLMError,
    LLMNotConfigured,
    RecordNotFound,
    SandboxError,
    ServerShuttingDown,
    StorageError,
    StorageFull,
    StorageUnavailable,
    TooManyConversations,
    UnsupportedUserAction,
)

logger = logging.getLogger(__name__)

_STATUS: list[tuple[type[ConvoError], int]] = [
    (ConversationNotFound, 404),
    (InvalidConversationId, 400),
    (UnsupportedUserAction, 400),
    (LLMNotConfigured, 400),
    (LLMError, 502),
    (DiskNearlyFull, 507),  # Insufficient Storage
    # the user's running limit, with no room made by stopping the oldest: the user must act
    (TooManyConversations, 429),
    (SandboxError, 500),
    # a row gone mid-request: a conversation deleted while a start or message used it
    (RecordNotFound, 404),
    (StorageError, 503),
    (ServerShuttingDown, 503),
]


def status_for(exc: ConvoError) -> int:
    for cls, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return 500


async def _convo_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConvoError)
    code = status_for(exc)
    if isinstance(exc, StorageUnavailable | StorageFull):
        manager = getattr(request.app.state, "manager", None)
        retry_after = 5
        if manager is not None:
            manager.health.failed(exc)  # logs the outage once
            retry_after = manager.health.retry_after()
        return JSONResponse(
            {"detail": str(exc)}, status_code=code, headers={"Retry-After": str(retry_after)}
        )
    if code >= 500:
        logger.error("request failed: %s", exc)
    return JSONResponse({"detail": str(exc)}, status_code=code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ConvoError, _convo_error)
