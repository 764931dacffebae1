"""FastAPI dependencies: the objects on app.state, and the session key check.

All ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a round trip
per dependency per request (16 on a /start) for what is an attribute lookup.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from convo.config import Settings
from convo.runtime.base import SandboxFactory
from convo.services.conversations import ConversationManager
from convo.storage.base import Storage

_api_key_header = APIKeyHeader(name="X-Session-API-Key", auto_error=False)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_manager(request: Request) -> ConversationManager:
    manager: ConversationManager = request.app.state.manager
    return manager


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


async def get_sandbox_factory(request: Request) -> SandboxFactory:
    factory: SandboxFactory = request.app.state.sandbox_factory
    return factory


async def get_user_id() -> str | None:
    """One user per server for now: requests are made on behalf of the key holder."""
    return None


async def require_session_key(
    request: Request, key: Annotated[str | None, Depends(_api_key_header)]
) -> None:
    # Settings straight from app.state, not through get_settings: every API request runs
    # this, and each dependency FastAPI solves costs about as much as the check itself.
    settings: Settings = request.app.state.settings
    expected = settings.session_api_key
    if expected is None:
        return
    if key is None or not secrets.compare_digest(
        key.encode(), expected.get_secret_value().encode()
    ):
        raise HTTPException(status_code=401, detail="Unauthorized")


ManagerDep = Annotated[ConversationManager, Depends(get_manager)]
StorageDep = Annotated[Storage, Depends(get_storage)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SandboxFactoryDep = Annotated[SandboxFactory, Depends(get_sandbox_factory)]
UserIdDep = Annotated[str | None, Depends(get_user_id)]
