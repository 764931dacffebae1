"""/api/conversations: create, list, get, rename, delete, start, stop."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse

from convo.api.deps import ManagerDep, UserIdDep
from convo.api.schemas import (
    CONVERSATION_ID_PATTERN,
    ConversationInfo,
    ConversationInfoResultSet,
    ConversationResponse,
    CreateConversationRequest,
    ProvidersSetModel,
    UpdateConversationRequest,
)
from convo.domain.conversation import (
    AgentState,
    ConversationMetadata,
    ConversationStatus,
    ConversationTrigger,
    ProviderType,
)
from convo.domain.suggested_tasks import task_prompt
from convo.errors import (
    ConversationNotFound,
    ConvoError,
    DiskNearlyFull,
    RepositoryNotAccessible,
    ServerShuttingDown,
)
from convo.services.conversation_records import CreatedConversation
from convo.services.conversations import ConversationManager, NewConversation
from convo.services.durable_writes import DISK_FULL, STORAGE_LOST
from convo.services.replay import TrajectoryError, parse_trajectory
from convo.services.stopping import StopResult

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/conversations", tags=["conversations"])

MAX_PAGE = 100
ConversationId = Annotated[str, Path(pattern=CONVERSATION_ID_PATTERN, title="Conversation Id")]


def _info(manager: ConversationManager, metadata: ConversationMetadata) -> ConversationInfo:
    cid = metadata.conversation_id
    status = manager.status(cid)
    runtime_status = {
        ConversationStatus.RUNNING: "STATUS$READY",
        ConversationStatus.STARTING: "STATUS$STARTING_RUNTIME",
    }.get(status)
    health = manager.health
    if status is ConversationStatus.STOPPED and metadata.desired_running and health.down:
        runtime_status = DISK_FULL if health.full else STORAGE_LOST  # why it is not resumed
    return ConversationInfo(
        conversation_id=cid,
        title=metadata.title,
        last_updated_at=metadata.last_updated_at,
        status=status,
        runtime_status=runtime_status,
        selected_repository=metadata.selected_repository,
        selected_branch=metadata.selected_branch,
        git_provider=metadata.git_provider,
        trigger=metadata.trigger,
        num_connections=manager.num_connections(cid),
        url=f"/api/conversations/{cid}" if status is not ConversationStatus.STOPPED else None,
        session_api_key=None,
        created_at=metadata.created_at,
        pr_number=list(metadata.pr_number),
        agent_state=_agent_state(manager, metadata, status),
    )


_LIVE_ONLY = (AgentState.LOADING, AgentState.RUNNING)


def _agent_state(
    manager: ConversationManager, metadata: ConversationMetadata, status: ConversationStatus
) -> AgentState | None:
    """The running loop's own state, else the last one stored; a loop that is gone (the
    server stopped with it) is not working, whatever it last said."""
    if status is not ConversationStatus.STOPPED:
        return manager.agent_state(metadata.conversation_id) or metadata.agent_state
    if metadata.agent_state in _LIVE_ONLY:
        return AgentState.STOPPED
    return metadata.agent_state


def _error(status_code: int, body: dict[str, object]) -> JSONResponse:
    return JSONResponse(body, status_code=status_code)


async def _start(
    manager: ConversationManager,
    conversation_id: str,
    user_id: str | None,
    providers_set: list[ProviderType] | None = None,
    created: CreatedConversation | None = None,
) -> ConversationResponse | JSONResponse:
    """Start (or find running) a conversation's loop, answered as OpenHands answers it."""
    try:
        status = await manager.start(conversation_id, user_id, providers_set, created)
    except ConversationNotFound:
        return _error(404, {"status": "error", "conversation_id": conversation_id})
    except (ServerShuttingDown, DiskNearlyFull):
        raise  # 503 or 507: retry once the server is back or has disk space again
    except ConvoError as exc:
        logger.error("starting %s failed: %s", conversation_id, exc)
        return _error(
            500,
            {
                "status": "error",
                "conversation_id": conversation_id,
                "message": f"Failed to start conversation: {exc}",
            },
        )
    return ConversationResponse(
        status="ok", conversation_id=conversation_id, conversation_status=status
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="A retried create with the same key returns the conversation the first "
        "one made instead of making another (per user, for CONVO_IDEMPOTENCY_KEY_SECONDS).",
    ),
]


@router.post("", response_model=ConversationResponse)
async def new_conversation(
    body: CreateConversationRequest,
    manager: ManagerDep,
    user_id: UserIdDep,
    idempotency_key: IdempotencyKey = None,
) -> ConversationResponse | JSONResponse:
    if not await manager.llm_configured(user_id):
        return _error(
            400,
            {
                "status": "error",
                "message": "No LLM is configured: set CONVO_LLM_MODEL or save settings first",
                "msg_id": "CONFIGURATION$SETTINGS_NOT_FOUND",
            },
        )
    trigger = ConversationTrigger.GUI
    message = body.initial_user_msg
    repository, provider = body.repository, body.git_provider
    if body.suggested_task:
        task = body.suggested_task
        trigger = ConversationTrigger.SUGGESTED_TASK
        message = task_prompt(
            task.git_provider, task.task_type, task.repo, task.issue_number, task.title
        )
    elif body.create_microagent:
        trigger = ConversationTrigger.MICROAGENT_MANAGEMENT
        repository = repository or body.create_microagent.repo
        provider = provider or body.create_microagent.git_provider
    images, replay = body.image_urls, []
    if body.replay_json:
        try:
            trajectory = parse_trajectory(body.replay_json)
        except TrajectoryError as exc:
            return _error(400, {"status": "error", "message": str(exc)})
        message, images, replay = (
            trajectory.first_message,
            trajectory.image_urls,
            trajectory.responses,
        )
    if repository:
        try:
            provider = await manager.check_repository(user_id, repository, provider)
        except RepositoryNotAccessible as exc:
            return _error(
                400,
                {
                    "status": "error",
                    "message": str(exc),
                    "msg_id": "STATUS$GIT_PROVIDER_AUTHENTICATION_ERROR",
                },
            )
    created = await manager.create_conversation(
        user_id,
        NewConversation(
            initial_user_msg=message,
            image_urls=images,
            repository=repository,
            selected_branch=body.selected_branch,
            git_provider=provider,
            conversation_instructions=body.conversation_instructions,
            trigger=trigger,
            replay=replay,
            mcp_config=body.mcp_config,
            start=True,
        ),
        idempotency_key,
    )
    return await _start(manager, created.conversation_id, user_id, created=created)


@router.get("", response_model=ConversationInfoResultSet)
async def search_conversations(
    manager: ManagerDep,
    user_id: UserIdDep,
    page_id: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 20,
    selected_repository: str | None = None,
    conversation_trigger: ConversationTrigger | None = None,
) -> ConversationInfoResultSet:
    page = await manager.search(
        user_id,
        limit=min(limit, MAX_PAGE),  # a larger limit gets a next_page_id for the rest
        page_id=page_id,
        selected_repository=selected_repository,
        trigger=conversation_trigger,
    )
    return ConversationInfoResultSet(
        results=[_info(manager, m) for m in page.results], next_page_id=page.next_page_id
    )


@router.get("/{conversation_id}", response_model=ConversationInfo | None)
async def get_conversation(
    conversation_id: ConversationId, manager: ManagerDep
) -> ConversationInfo | None:
    try:
        return _info(manager, await manager.get_metadata(conversation_id))
    except ConversationNotFound:
        return None


@router.patch("/{conversation_id}", response_model=None)
async def update_conversation(
    conversation_id: ConversationId, body: UpdateConversationRequest, manager: ManagerDep
) -> bool | JSONResponse:
    title = body.title.strip()
    if not title:
        return _error(
            422,
            {
                "detail": [
                    {"loc": ["body", "title"], "msg": "Title is blank", "type": "value_error"}
                ]
            },
        )
    try:
        await manager.update_title(conversation_id, title)
    except ConversationNotFound:
        return _error(
            404,
            {
                "status": "error",
                "message": "Conversation not found",
                "msg_id": "CONVERSATION$NOT_FOUND",
            },
        )
    return True


@router.delete("/{conversation_id}")
async def delete_conversation(conversation_id: ConversationId, manager: ManagerDep) -> bool:
    return await manager.delete(conversation_id)


@router.post("/{conversation_id}/start", response_model=ConversationResponse)
async def start_conversation(
    conversation_id: ConversationId,
    body: ProvidersSetModel,
    manager: ManagerDep,
    user_id: UserIdDep,
) -> ConversationResponse | JSONResponse:
    """Start an agent loop for a conversation; if it already runs, return its status."""
    return await _start(manager, conversation_id, user_id, body.providers_set)


@router.post("/{conversation_id}/stop", response_model=ConversationResponse)
async def stop_conversation(
    conversation_id: ConversationId, manager: ManagerDep
) -> ConversationResponse | JSONResponse:
    try:
        await manager.get_metadata(conversation_id)
    except ConversationNotFound:  # as OpenHands: nothing runs under that id
        return ConversationResponse(
            status="ok",
            conversation_id=conversation_id,
            message="Conversation was not running",
            conversation_status=ConversationStatus.STOPPED,
        )
    try:
        result = await manager.stop(conversation_id)
    except ConvoError as exc:
        return _error(
            500,
            {
                "status": "error",
                "conversation_id": conversation_id,
                "message": f"Failed to stop conversation: {exc}",
            },
        )
    if result is StopResult.STILL_RUNNING:  # OpenHands' failure shape, and the truth
        return _error(
            500,
            {
                "status": "error",
                "conversation_id": conversation_id,
                "message": "Failed to stop conversation: its loop has not ended yet; it is "
                "still being stopped and will not be resumed",
                "conversation_status": manager.status(conversation_id),
            },
        )
    return ConversationResponse(
        status="ok",
        conversation_id=conversation_id,
        message="Conversation stopped successfully"
        if result is StopResult.STOPPED
        else "Conversation was not running",
        conversation_status=manager.status(conversation_id),
    )
