"""/alive and /health: open without a session key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(tags=["health"])


@router.get("/alive")
async def alive() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    runtime = request.app.state.sandbox_factory.name
    body: dict[str, Any] = {"status": "ok", "runtime": runtime}
    warning = getattr(request.app.state, "runtime_warning", None)
    if warning:
        body["warnings"] = [warning]
    return body
