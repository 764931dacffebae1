"""Per-conversation odds and ends the web client asks for: trajectory, microagents, config,
vscode-url and web-hosts. convo runs no editor and exposes no web hosts."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from convo.agent.microagents import load_microagents
from convo.api.deps import ManagerDep, SandboxFactoryDep
from convo.api.routes.conversations import ConversationId
from convo.domain.conversation import ConversationStatus
from convo.runtime.base import SandboxSpec
from convo.runtime.workspace import Workspace

router = APIRouter(prefix="/api/conversations", tags=["conversations"])

_TRAJECTORY_PAGE = 500


@router.get("/{conversation_id}/trajectory")
async def get_trajectory(conversation_id: ConversationId, manager: ManagerDep) -> dict[str, Any]:
    trajectory: list[dict[str, Any]] = []
    while True:
        page = await manager.events(
            conversation_id, start_id=len(trajectory), limit=_TRAJECTORY_PAGE
        )
        trajectory.extend(event.to_wire() for event in page)
        if len(page) < _TRAJECTORY_PAGE:
            return {"trajectory": trajectory}


def read_microagents(workspace: Workspace) -> list[dict[str, Any]]:
    """Microagents in ``.openhands/microagents/`` of the workspace or a repository in it."""
    if not workspace.exists():
        return []
    return [agent.to_wire() for agent in load_microagents(workspace)]


@router.get("/{conversation_id}/microagents")
async def get_microagents(
    conversation_id: ConversationId, manager: ManagerDep, factory: SandboxFactoryDep
) -> dict[str, Any]:
    await manager.get_metadata(conversation_id)
    spec = SandboxSpec(conversation_id, manager.workspace_path(conversation_id))
    workspace = factory.create(spec).workspace  # descriptor-relative reads, never by name
    return {"microagents": await asyncio.to_thread(read_microagents, workspace)}


@router.get("/{conversation_id}/config")
async def get_config(
    conversation_id: ConversationId, manager: ManagerDep, request: Request
) -> dict[str, Any]:
    await manager.get_metadata(conversation_id)
    running = manager.status(conversation_id) is not ConversationStatus.STOPPED
    runtime = request.app.state.sandbox_factory.name
    return {
        "runtime_id": f"{runtime}-{conversation_id}" if running else None,
        "session_id": conversation_id,
    }


@router.get("/{conversation_id}/vscode-url")
async def get_vscode_url(conversation_id: ConversationId, manager: ManagerDep) -> dict[str, Any]:
    await manager.get_metadata(conversation_id)
    return {"vscode_url": None}


@router.get("/{conversation_id}/web-hosts")
async def get_web_hosts(conversation_id: ConversationId, manager: ManagerDep) -> dict[str, Any]:
    await manager.get_metadata(conversation_id)
    return {"hosts": {}}
