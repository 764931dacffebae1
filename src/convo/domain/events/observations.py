"""Observation kinds, one class each, with their extras as fields (OpenHands 0.53's
``events/observation/*.py``). Adding a kind is one class: subclassing :class:`Observation`
with a ``kind`` registers it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from convo.domain.events.base import Observation
from convo.domain.events.metadata import CmdOutputMetadata


class ObservationType(StrEnum):
    RUN = "run"
    RUN_IPYTHON = "run_ipython"
    READ = "read"
    WRITE = "write"
    EDIT = "edit"
    BROWSE = "browse"
    THINK = "think"
    ERROR = "error"
    SUCCESS = "success"
    AGENT_STATE_CHANGED = "agent_state_changed"
    USER_REJECTED = "user_rejected"
    CONDENSE = "condense"
    DELEGATE = "delegate"
    RECALL = "recall"
    MCP = "mcp"
    NULL = "null"


class CmdOutputObservation(Observation):
    kind: ClassVar[str] = ObservationType.RUN
    command: str = ""
    hidden: bool = False
    metadata: CmdOutputMetadata = Field(default_factory=CmdOutputMetadata)
    success: bool = False

    @property
    def exit_code(self) -> int:
        return self.metadata.exit_code


class IPythonRunCellObservation(Observation):
    kind: ClassVar[str] = ObservationType.RUN_IPYTHON
    code: str = ""
    image_urls: list[str] | None = None


class FileReadObservation(Observation):
    kind: ClassVar[str] = ObservationType.READ
    path: str = ""
    impl_source: str = "default"


class FileWriteObservation(Observation):
    kind: ClassVar[str] = ObservationType.WRITE
    path: str = ""


class FileEditObservation(Observation):
    kind: ClassVar[str] = ObservationType.EDIT
    path: str = ""
    prev_exist: bool = False
    old_content: str | None = None
    new_content: str | None = None
    impl_source: str = "oh_aci"
    diff: str | None = None


class BrowserOutputObservation(Observation):
    kind: ClassVar[str] = ObservationType.BROWSE
    url: str = ""
    trigger_by_action: str = ""
    screenshot: str = ""
    error: bool = False


class AgentThinkObservation(Observation):
    kind: ClassVar[str] = ObservationType.THINK


class ErrorObservation(Observation):
    kind: ClassVar[str] = ObservationType.ERROR
    error_id: str = ""


class SuccessObservation(Observation):
    kind: ClassVar[str] = ObservationType.SUCCESS


class AgentStateChangedObservation(Observation):
    kind: ClassVar[str] = ObservationType.AGENT_STATE_CHANGED
    agent_state: str = ""
    reason: str = ""


class UserRejectObservation(Observation):
    kind: ClassVar[str] = ObservationType.USER_REJECTED


class AgentCondensationObservation(Observation):
    kind: ClassVar[str] = ObservationType.CONDENSE


class AgentDelegateObservation(Observation):
    kind: ClassVar[str] = ObservationType.DELEGATE
    outputs: dict[str, Any] = Field(default_factory=dict)


class MicroagentKnowledge(BaseModel):
    """One knowledge microagent a message triggered."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    name: str = ""
    trigger: str = ""
    content: str = ""


class RecallObservation(Observation):
    """Context for the agent: the workspace's at the start (``workspace_context``) or the
    knowledge microagents a user message triggered (``knowledge``)."""

    kind: ClassVar[str] = ObservationType.RECALL
    recall_type: str = "knowledge"
    repo_name: str = ""
    repo_directory: str = ""
    repo_branch: str = ""
    repo_instructions: str = ""
    runtime_hosts: dict[str, int] = Field(default_factory=dict)
    additional_agent_instructions: str = ""
    date: str = ""
    custom_secrets_descriptions: dict[str, str] = Field(default_factory=dict)
    conversation_instructions: str = ""
    working_dir: str = ""
    microagent_knowledge: list[MicroagentKnowledge] = Field(default_factory=list)


class MCPObservation(Observation):
    """The result of an MCP tool call. convo writes the result's text as ``content``
    (OpenHands writes the whole result as JSON; its web client shows either)."""

    kind: ClassVar[str] = ObservationType.MCP
    name: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)


class NullObservation(Observation):
    kind: ClassVar[str] = ObservationType.NULL
