"""Action kinds, one class each, with their args as fields (OpenHands 0.53's
``events/action/*.py``). Adding a kind is one class: subclassing :class:`Action` with a
``kind`` registers it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from convo.domain.events.base import Action


class ActionType(StrEnum):
    MESSAGE = "message"
    SYSTEM = "system"
    RUN = "run"
    RUN_IPYTHON = "run_ipython"
    READ = "read"
    WRITE = "write"
    EDIT = "edit"
    THINK = "think"
    FINISH = "finish"
    REJECT = "reject"
    DELEGATE = "delegate"
    BROWSE = "browse"
    BROWSE_INTERACTIVE = "browse_interactive"
    MCP = "call_tool_mcp"
    CHANGE_AGENT_STATE = "change_agent_state"
    CONDENSATION = "condensation"
    CONDENSATION_REQUEST = "condensation_request"
    RECALL = "recall"
    NULL = "null"


class MessageAction(Action):
    kind: ClassVar[str] = ActionType.MESSAGE
    content: str = ""
    file_urls: list[str] | None = Field(default_factory=list)
    image_urls: list[str] | None = Field(default_factory=list)
    wait_for_response: bool = False
    security_risk: int | None = None


class SystemMessageAction(Action):
    """The system prompt and the tools the agent was given, first in a conversation."""

    kind: ClassVar[str] = ActionType.SYSTEM
    content: str = ""
    tools: list[Any] | None = None
    openhands_version: str | None = None
    agent_class: str | None = None


class CmdRunAction(Action):
    kind: ClassVar[str] = ActionType.RUN
    command: str = ""
    is_input: bool = False
    thought: str = ""
    blocking: bool = False
    is_static: bool = False
    cwd: str | None = None
    hidden: bool = False
    confirmation_state: str = "confirmed"
    security_risk: int | None = None


class IPythonRunCellAction(Action):
    kind: ClassVar[str] = ActionType.RUN_IPYTHON
    code: str = ""
    thought: str = ""
    include_extra: bool = True
    confirmation_state: str = "confirmed"
    security_risk: int | None = None
    kernel_init_code: str = ""


class FileReadAction(Action):
    kind: ClassVar[str] = ActionType.READ
    path: str = ""
    start: int = 0
    end: int = -1
    thought: str = ""
    security_risk: int | None = None
    impl_source: str = "default"
    view_range: list[int] | None = None
    confirmation_state: str | None = None


class FileWriteAction(Action):
    kind: ClassVar[str] = ActionType.WRITE
    path: str = ""
    content: str = ""
    start: int = 0
    end: int = -1
    thought: str = ""
    security_risk: int | None = None
    confirmation_state: str | None = None


class FileEditAction(Action):
    kind: ClassVar[str] = ActionType.EDIT
    path: str = ""
    command: str = ""
    file_text: str | None = None
    old_str: str | None = None
    new_str: str | None = None
    insert_line: int | None = None
    content: str = ""
    start: int = 1
    end: int = -1
    thought: str = ""
    security_risk: int | None = None
    impl_source: str = "oh_aci"
    confirmation_state: str | None = None


class AgentThinkAction(Action):
    kind: ClassVar[str] = ActionType.THINK
    thought: str = ""


class AgentFinishAction(Action):
    kind: ClassVar[str] = ActionType.FINISH
    final_thought: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    thought: str = ""


class AgentRejectAction(Action):
    kind: ClassVar[str] = ActionType.REJECT
    outputs: dict[str, Any] = Field(default_factory=dict)
    thought: str = ""


class AgentDelegateAction(Action):
    kind: ClassVar[str] = ActionType.DELEGATE
    agent: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    thought: str = ""


class BrowseURLAction(Action):
    kind: ClassVar[str] = ActionType.BROWSE
    url: str = ""
    thought: str = ""
    security_risk: int | None = None
    return_axtree: bool = False


class BrowseInteractiveAction(Action):
    kind: ClassVar[str] = ActionType.BROWSE_INTERACTIVE
    browser_actions: str = ""
    thought: str = ""
    browsergym_send_msg_to_user: str = ""
    security_risk: int | None = None
    return_axtree: bool = False


class MCPAction(Action):
    """A call of a tool an MCP server provides."""

    kind: ClassVar[str] = ActionType.MCP
    name: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    thought: str = ""
    security_risk: int | None = None
    confirmation_state: str | None = None  # convo's confirmation mode holds MCP calls too


class ChangeAgentStateAction(Action):
    kind: ClassVar[str] = ActionType.CHANGE_AGENT_STATE
    agent_state: str = ""
    thought: str = ""


class CondensationAction(Action):
    """Earlier events the agent's history forgets, and the summary that replaces them."""

    kind: ClassVar[str] = ActionType.CONDENSATION
    forgotten_event_ids: list[int] | None = None
    forgotten_events_start_id: int | None = None
    forgotten_events_end_id: int | None = None
    summary: str | None = None
    summary_offset: int | None = None


class CondensationRequestAction(Action):
    kind: ClassVar[str] = ActionType.CONDENSATION_REQUEST


class RecallAction(Action):
    """A request for context: the workspace's (at the start) or knowledge a message triggers."""

    kind: ClassVar[str] = ActionType.RECALL
    recall_type: str = "workspace_context"
    query: str = ""
    thought: str = ""


class NullAction(Action):
    kind: ClassVar[str] = ActionType.NULL


# Actions that carry a ``confirmation_state`` (confirmation mode applies to them).
CONFIRMABLE = (
    CmdRunAction,
    IPythonRunCellAction,
    FileReadAction,
    FileWriteAction,
    FileEditAction,
    MCPAction,
)


def confirmation_state(event: object) -> str | None:
    """The action's confirmation state, or None for an event that has none."""
    return event.confirmation_state if isinstance(event, CONFIRMABLE) else None
