"""/alive and /health: open without a session key.

``/alive`` is the liveness probe: 200 whenever the process serves HTTP, whatever its
dependencies do (restarting convo would not bring a database back). ``/health`` is the
readiness probe: 503 while the database does not answer or the data dir's disk is full, or,
in cluster mode, while Redis does not answer a PING within a second, with what is wrong in
the body. (Conversations keep running while Redis is down; live events and requests between
servers wait for it.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from convo.services.storage_health import probe

router = APIRouter(tags=["health"])

REDIS_ANSWER_WITHIN = 1.0


@router.get("/alive")
async def alive() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health", response_model=None)
async def health(request: Request) -> dict[str, Any] | JSONResponse:
    state = request.app.state
    manager = state.manager
    checks = await probe(
        state.storage,
        manager.health,
        manager.writer.reserve,
        state.settings.db_statement_timeout_seconds,
    )
    redis = getattr(state, "redis", None)
    if redis is not None:
        checks["redis"] = await redis.probe(REDIS_ANSWER_WITHIN)
    healthy = all(value == "ok" for value in checks.values())
    body: dict[str, Any] = {
        "status": "ok" if healthy else "unavailable",
        "runtime": state.sandbox_factory.name,
        **checks,
    }
    warning = getattr(state, "runtime_warning", None)
    if warning:
        body["warnings"] = [warning]
    if healthy:
        return body
    headers = {"Retry-After": str(manager.health.retry_after())}
    return JSONResponse(body, status_code=503, headers=headers)
