"""Workspace files of a conversation: list, show, zip, upload, git changes and diffs.

They work whether or not the conversation's loop runs. Each request gets the conversation's
sandbox object (not started): its ``workspace`` for descriptor-relative file access, its
``exec`` to run git confined (``convo.services.git_workspace``). A workspace that does not
exist yet is a 404 with a message saying so; a path outside the workspace is a 403; a path
the agent changed while it was being read is a 409.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from convo.api.deps import ManagerDep, SandboxFactoryDep, SettingsDep
from convo.api.routes.conversations import ConversationId
from convo.errors import ConvoError, PathOutsideWorkspace
from convo.runtime.base import Sandbox, SandboxSpec
from convo.services.git_workspace import (
    GitFailed,
    GitUnavailable,
    NotAGitRepository,
    git_changes,
    git_diff,
)
from convo.services.workspace_files import (
    BinaryFile,
    FileMissing,
    FileTooLarge,
    NotADirectory,
    PathChanged,
    UploadResult,
    WorkspaceMissing,
    WorkspaceTooLarge,
    existing,
    list_entries,
    read_text,
    save_upload,
    translate,
    zip_workspace,
)

router = APIRouter(prefix="/api/conversations", tags=["files"])

_STATUS: list[tuple[type[ConvoError], int]] = [
    (WorkspaceMissing, 404),
    (FileMissing, 404),
    (NotAGitRepository, 404),
    (PathOutsideWorkspace, 403),
    (PathChanged, 409),
    (BinaryFile, 415),
    (FileTooLarge, 413),
    (WorkspaceTooLarge, 413),
    (GitUnavailable, 503),
    (GitFailed, 500),
]
_HANDLED = (ConvoError, OSError)


def _error(exc: ConvoError | OSError) -> JSONResponse:
    if isinstance(exc, OSError):  # of the workspace walk: a race with the agent, or missing
        exc = translate(exc, exc.filename or "the path")
    code = next((c for cls, c in _STATUS if isinstance(exc, cls)), 400)
    return JSONResponse({"error": str(exc), "detail": str(exc)}, status_code=code)


async def _sandbox(
    manager: ManagerDep, factory: SandboxFactoryDep, conversation_id: str
) -> Sandbox:
    """The sandbox of an existing conversation (404 for an unknown conversation)."""
    await manager.get_metadata(conversation_id)
    spec = SandboxSpec(conversation_id, manager.workspace_path(conversation_id))
    return factory.create(spec)


@router.get("/{conversation_id}/list-files", response_model=None)
async def list_files(
    conversation_id: ConversationId,
    manager: ManagerDep,
    factory: SandboxFactoryDep,
    path: str | None = None,
) -> list[str] | JSONResponse:
    """A directory that does not exist (or is a file) lists as ``[]``, as in OpenHands: the
    web client lists ``.openhands/microagents/`` whether or not a repository has one."""
    sandbox = await _sandbox(manager, factory, conversation_id)
    try:
        workspace = await asyncio.to_thread(existing, sandbox.workspace, conversation_id)
        return await asyncio.to_thread(list_entries, workspace, path)
    except (FileMissing, NotADirectory):
        return []
    except _HANDLED as exc:
        return _error(exc)


@router.get("/{conversation_id}/select-file", response_model=None)
async def select_file(
    conversation_id: ConversationId,
    manager: ManagerDep,
    factory: SandboxFactoryDep,
    file: Annotated[str, Query(min_length=1)],
) -> dict[str, str] | JSONResponse:
    sandbox = await _sandbox(manager, factory, conversation_id)
    try:
        workspace = await asyncio.to_thread(existing, sandbox.workspace, conversation_id)
        return {"code": await asyncio.to_thread(read_text, workspace, file)}
    except _HANDLED as exc:
        return _error(exc)


@router.get("/{conversation_id}/zip-directory", response_model=None)
async def zip_directory(
    conversation_id: ConversationId,
    manager: ManagerDep,
    factory: SandboxFactoryDep,
    settings: SettingsDep,
) -> FileResponse | JSONResponse:
    sandbox = await _sandbox(manager, factory, conversation_id)
    quota = settings.workspace_disk_mb
    try:
        workspace = await asyncio.to_thread(existing, sandbox.workspace, conversation_id)
        archive = await asyncio.to_thread(
            zip_workspace, workspace, quota * 2**20 if quota is not None else None
        )
    except _HANDLED as exc:
        return _error(exc)
    return FileResponse(
        archive,
        media_type="application/zip",
        filename="workspace.zip",
        background=BackgroundTask(asyncio.to_thread, archive.unlink, True),
    )


@router.post("/{conversation_id}/upload-files")
async def upload_files(
    conversation_id: ConversationId,
    manager: ManagerDep,
    factory: SandboxFactoryDep,
    files: Annotated[list[UploadFile], File()],
) -> dict[str, Any]:
    sandbox = await _sandbox(manager, factory, conversation_id)
    result = UploadResult()
    for upload in files:
        try:
            await asyncio.to_thread(
                save_upload, sandbox.workspace, upload.filename or "", upload.file, result
            )
        finally:
            await upload.close()
    return {"uploaded_files": result.uploaded_files, "skipped_files": result.skipped_files}


@router.get("/{conversation_id}/git/changes", response_model=None)
async def get_git_changes(
    conversation_id: ConversationId, manager: ManagerDep, factory: SandboxFactoryDep
) -> list[dict[str, str]] | JSONResponse:
    sandbox = await _sandbox(manager, factory, conversation_id)
    try:
        await asyncio.to_thread(existing, sandbox.workspace, conversation_id)
        return await git_changes(sandbox)
    except _HANDLED as exc:
        return _error(exc)


@router.get("/{conversation_id}/git/diff", response_model=None)
async def get_git_diff(
    conversation_id: ConversationId,
    manager: ManagerDep,
    factory: SandboxFactoryDep,
    path: Annotated[str, Query(min_length=1)],
) -> dict[str, str] | JSONResponse:
    sandbox = await _sandbox(manager, factory, conversation_id)
    try:
        await asyncio.to_thread(existing, sandbox.workspace, conversation_id)
        return await git_diff(sandbox, path)
    except _HANDLED as exc:
        return _error(exc)
