"""Per-conversation odds and ends the web client asks for: trajectory, microagents, config,
vscode-url and web-hosts. convo runs no editor and exposes no web hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from convo.api.deps import ManagerDep
from convo.api.routes.conversations import ConversationId
from convo.domain.conversation import ConversationStatus

router = APIRouter(prefix="/api/conversations", tags=["conversations"])

_TRAJECTORY_PAGE = 500
MICROAGENT_DIR = Path(".openhands") / "microagents"


@router.get("/{conversation_id}/trajectory")
async def get_trajectory(conversation_id: ConversationId, manager: ManagerDep) -> dict[str, Any]:
    await manager.get_metadata(conversation_id)
    trajectory: list[dict[str, Any]] = []
    while True:
        page = await manager.storage.events.list(
            conversation_id, start_id=len(trajectory), limit=_TRAJECTORY_PAGE
        )
        trajectory.extend(event.to_wire() for event in page)
        if len(page) < _TRAJECTORY_PAGE:
            return {"trajectory": trajectory}


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A tiny reader for the ``---`` header of a microagent: ``key: value`` and lists."""
    if not text.startswith("---"):
        return {}, text
    head, sep, body = text[3:].partition("\n---")
    if not sep:
        return {}, text
    meta: dict[str, Any] = {}
    key: str | None = None
    for line in head.splitlines():
        stripped = line.strip()
        if stripped.startswith("- ") and key is not None:
            items = meta.setdefault(key, [])
            if isinstance(items, list):
                items.append(stripped[2:].strip().strip("'\""))
        elif ":" in stripped:
            key, _, value = stripped.partition(":")
            key = key.strip()
            meta[key] = value.strip().strip("'\"") if value.strip() else []
    return meta, body.lstrip("-\n")


def read_microagents(workspace: Path) -> list[dict[str, Any]]:
    """Microagents in ``.openhands/microagents/`` of the workspace or a repository in it."""
    if not workspace.is_dir():
        return []
    folders = [workspace / MICROAGENT_DIR]
    folders += [child / MICROAGENT_DIR for child in sorted(workspace.iterdir()) if child.is_dir()]
    found: list[dict[str, Any]] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.md")):
            if path.name.lower() == "readme.md" or not path.is_file():
                continue
            meta, content = _front_matter(path.read_text(encoding="utf-8", errors="replace"))
            triggers = meta.get("triggers")
            triggers = triggers if isinstance(triggers, list) else []
            found.append(
                {
                    "name": str(meta.get("name") or path.stem),
                    "type": "knowledge" if triggers else "repo",
                    "content": content,
                    "triggers": triggers,
                    "inputs": [],
                    "tools": [],
                }
            )
    return found


@router.get("/{conversation_id}/microagents")
async def get_microagents(conversation_id: ConversationId, manager: ManagerDep) -> dict[str, Any]:
    await manager.get_metadata(conversation_id)
    workspace = manager.workspace_path(conversation_id)
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
