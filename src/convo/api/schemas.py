"""Request and response bodies, with OpenHands 0.53's field names (apart from domain models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from convo.domain.conversation import (
    AgentState,
    ConversationStatus,
    ConversationTrigger,
    ProviderType,
)
from convo.domain.events import Event
from convo.domain.events.filter import EventFilter, event_class
from convo.domain.mcp_config import MCPConfig
from convo.domain.suggested_tasks import TaskType

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class ProvidersSetModel(BaseModel):
    providers_set: list[ProviderType] | None = None


class ConversationResponse(BaseModel):
    status: str
    conversation_id: str
    message: str | None = None
    conversation_status: ConversationStatus | None = None


class SuggestedTask(BaseModel):
    """A task card of the web client (``GET /api/user/suggested-tasks``)."""

    git_provider: ProviderType
    task_type: TaskType
    repo: str
    issue_number: int
    title: str


class CreateMicroagent(BaseModel):
    """The microagent management screen's "add a microagent to this repository"."""

    repo: str
    git_provider: ProviderType | None = None
    title: str | None = None


class CreateConversationRequest(BaseModel):
    # OpenHands calls this schema InitSessionRequest, kept as its OpenAPI title.
    model_config = ConfigDict(extra="forbid", title="InitSessionRequest")

    repository: str | None = None
    git_provider: ProviderType | None = None
    selected_branch: str | None = None
    initial_user_msg: str | None = None
    image_urls: list[str] | None = None
    replay_json: str | None = None
    suggested_task: SuggestedTask | None = None
    create_microagent: CreateMicroagent | None = None
    conversation_instructions: str | None = None
    # the MCP servers of this conversation's first loop instead of the settings' (OpenHands
    # does the same: a later start uses the settings' again)
    mcp_config: MCPConfig | None = None


class ConversationInfo(BaseModel):
    conversation_id: str
    title: str
    last_updated_at: datetime | None = None
    status: ConversationStatus = ConversationStatus.STOPPED
    runtime_status: str | None = None
    selected_repository: str | None = None
    selected_branch: str | None = None
    git_provider: ProviderType | None = None
    trigger: ConversationTrigger | None = None
    num_connections: int = 0
    url: str | None = None
    session_api_key: str | None = None
    created_at: datetime
    pr_number: list[int] = Field(default_factory=list)
    # convo's addition beside OpenHands' fields: what the agent is doing or how it ended
    # (running, awaiting_user_input, finished, error, stopped, ...); None before its first
    # start.
    agent_state: AgentState | None = None


class ConversationInfoResultSet(BaseModel):
    results: list[ConversationInfo] = Field(default_factory=list)
    next_page_id: str | None = None


class UpdateConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)


class EventPage(BaseModel):
    events: list[dict[str, Any]]
    has_more: bool


class EventFilterBody(BaseModel):
    """OpenHands' ``EventFilter``: the body of ``GET .../events`` (see
    ``convo.domain.events.filter``). Types are named as OpenHands names its event classes;
    OpenHands itself refuses any value there (it expects Python classes), convo reads names."""

    exclude_hidden: bool = False
    query: str | None = None
    include_types: list[str] | None = None
    exclude_types: list[str] | None = None
    source: str | None = None
    start_date: str | None = None
    end_date: str | None = None

    @field_validator("include_types", "exclude_types")
    @classmethod
    def _known_types(cls, names: list[str] | None) -> list[str] | None:
        unknown = [name for name in names or [] if event_class(name) is None]
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(sorted(set(unknown)))}")
        return names

    def to_filter(self) -> EventFilter:
        return EventFilter(
            exclude_hidden=self.exclude_hidden,
            query=self.query,
            include_types=_classes(self.include_types),
            exclude_types=_classes(self.exclude_types),
            source=self.source,
            start_date=self.start_date,
            end_date=self.end_date,
        )


def _classes(names: list[str] | None) -> tuple[type[Event], ...] | None:
    if names is None:
        return None
    return tuple(cls for name in names if (cls := event_class(name)) is not None)


class ClientSettings(BaseModel):
    """Settings convo keeps for the OpenHands web client without acting on them: stored as
    sent (in ``UserSettings.extra``) and returned as saved, with OpenHands' defaults."""

    remote_runtime_resource_factor: int | None = None
    security_analyzer: str | None = None
    enable_default_condenser: bool = True
    enable_sound_notifications: bool = False
    enable_proactive_conversation_starters: bool = True
    enable_solvability_analysis: bool = True
    user_consents_to_analytics: bool | None = None
    sandbox_base_container_image: str | None = None
    sandbox_runtime_container_image: str | None = None
    mcp_config: dict[str, Any] | None = None
    condenser_max_size: int | None = None
    email: str | None = None
    email_verified: bool | None = None


CLIENT_SETTINGS = tuple(ClientSettings.model_fields)


class SettingsBody(BaseModel):
    """POST /api/settings: any subset; absent or null fields keep their stored value."""

    language: str | None = None
    agent: str | None = None
    max_iterations: int | None = Field(default=None, ge=1)
    max_budget_per_task: float | None = Field(default=None, ge=0)
    confirmation_mode: bool | None = None
    llm_model: str | None = None
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    search_api_key: str | None = None
    git_user_name: str | None = None
    git_user_email: str | None = None
    # ClientSettings' fields, all optional here
    remote_runtime_resource_factor: int | None = None
    security_analyzer: str | None = None
    enable_default_condenser: bool | None = None
    enable_sound_notifications: bool | None = None
    enable_proactive_conversation_starters: bool | None = None
    enable_solvability_analysis: bool | None = None
    user_consents_to_analytics: bool | None = None
    sandbox_base_container_image: str | None = None
    sandbox_runtime_container_image: str | None = None
    # validated (422 when invalid) and stored normalised, as OpenHands' Settings model does:
    # a bare URL becomes {"url": ...}, absent fields get their defaults
    mcp_config: MCPConfig | None = None
    condenser_max_size: int | None = None
    email: str | None = None
    email_verified: bool | None = None


class SettingsView(ClientSettings):
    """GET /api/settings, OpenHands' GETSettingsModel: keys are never returned, only whether
    they are set."""

    language: str | None = None
    agent: str = "CodeActAgent"
    max_iterations: int
    max_budget_per_task: float | None = None
    confirmation_mode: bool = False
    llm_model: str | None = None
    llm_base_url: str | None = None
    llm_api_key: None = None
    llm_api_key_set: bool = False
    search_api_key: None = None
    search_api_key_set: bool = False
    sandbox_api_key: None = None
    git_user_name: str | None = None
    git_user_email: str | None = None
    provider_tokens_set: dict[ProviderType, str | None] = Field(default_factory=dict)


class ProviderTokenBody(BaseModel):
    token: str = ""
    host: str | None = None
    user_id: str | None = None


class GitProvidersBody(BaseModel):
    provider_tokens: dict[ProviderType, ProviderTokenBody]


class MessageResponse(BaseModel):
    message: str
