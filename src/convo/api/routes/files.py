"""Workspace files of a conversation: list, show, zip, upload, git changes and diffs.

They work whether or not the conversation's loop runs. A workspace that does not exist yet
is a 404 with a message saying so; a path outside the workspace is a 403.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from convo.api.deps import ManagerDep
from convo.api.routes.conversations import ConversationId
from convo.services.git_workspace import GitFailed, NotAGitRepository, git_changes, git_diff
from convo.services.workspace_files import (
    BinaryFile,
    FileMissing,
    FileTooLarge,
    OutsideWorkspace,
    UploadResult,
    WorkspaceFileError,
    WorkspaceMissing,
    existing_root,
    list_entries,
    read_text,
    save_upload,
    zip_workspace,
)

router = APIRouter(prefix="/api/conversations", tags=["files"])

_STATUS: list[tuple[type[WorkspaceFileError], int]] = [
    (WorkspaceMissing, 404),
    (FileMissing, 404),
    (NotAGitRepository, 404),
    (OutsideWorkspace, 403),
    (BinaryFile, 415),
    (FileTooLarge, 413),
    (GitFailed, 500),
]


def _error(exc: WorkspaceFileError) -> JSONResponse:
    code = next((c for cls, c in _STATUS if isinstance(exc, cls)), 400)
    return JSONResponse({"error": str(exc), "detail": str(exc)}, status_code=code)


async def _workspace(manager: ManagerDep, conversation_id: str) -> Path:
    """The workspace of an existing conversation (404 for an unknown conversation)."""
    await manager.get_metadata(conversation_id)
    return manager.workspace_path(conversation_id)


@router.get("/{conversation_id}/list-files", response_model=None)
async def list_files(
    conversation_id: ConversationId, manager: ManagerDep, path: str | None = None
) -> list[str] | JSONResponse:
    workspace = await _workspace(manager, conversation_id)
    try:
        root = await asyncio.to_thread(existing_root, workspace, conversation_id)
        return await asyncio.to_thread(list_entries, root, path)
    except WorkspaceFileError as exc:
        return _error(exc)


@router.get("/{conversation_id}/select-file", response_model=None)
async def select_file(
    conversation_id: ConversationId,
    manager: ManagerDep,
    file: Annotated[str, Query(min_length=1)],
) -> dict[str, str] | JSONResponse:
    workspace = await _workspace(manager, conversation_id)
    try:
        root = await asyncio.to_thread(existing_root, workspace, conversation_id)
        return {"code": await asyncio.to_thread(read_text, root, file)}
    except WorkspaceFileError as exc:
        return _error(exc)


@router.get("/{conversation_id}/zip-directory", response_model=None)
async def zip_directory(
    conversation_id: ConversationId, manager: ManagerDep
) -> FileResponse | JSONResponse:
    workspace = await _workspace(manager, conversation_id)
    try:
        root = await asyncio.to_thread(existing_root, workspace, conversation_id)
    except WorkspaceFileError as exc:
        return _error(exc)
    archive = await asyncio.to_thread(zip_workspace, root)
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
    files: Annotated[list[UploadFile], File()],
) -> dict[str, Any]:
    workspace = await _workspace(manager, conversation_id)
    result = UploadResult()
    for upload in files:
        try:
            await asyncio.to_thread(
                save_upload, workspace, upload.filename or "", upload.file, result
            )
        finally:
            await upload.close()
    return {"uploaded_files": result.uploaded_files, "skipped_files": result.skipped_files}


@router.get("/{conversation_id}/git/changes", response_model=None)
async def get_git_changes(
    conversation_id: ConversationId, manager: ManagerDep
) -> list[dict[str, str]] | JSONResponse:
    workspace = await _workspace(manager, conversation_id)
    try:
        root = await asyncio.to_thread(existing_root, workspace, conversation_id)
        return await git_changes(root)
    except WorkspaceFileError as exc:
        return _error(exc)


@router.get("/{conversation_id}/git/diff", response_model=None)
async def get_git_diff(
    conversation_id: ConversationId,
    manager: ManagerDep,
    path: Annotated[str, Query(min_length=1)],
) -> dict[str, str] | JSONResponse:
    workspace = await _workspace(manager, conversation_id)
    try:
        root = await asyncio.to_thread(existing_root, workspace, conversation_id)
        return await git_diff(root, path)
    except WorkspaceFileError as exc:
        return _error(exc)
