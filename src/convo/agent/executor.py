"""Carrying out actions in the sandbox, and the observation events that report the results.

Each observation has ``cause`` = the action's id and repeats the action's
``tool_call_metadata``, so the history can pair it with the model's tool call.
"""

from __future__ import annotations

from typing import Any, Protocol

from convo.agent.editor import FileEditor
from convo.agent.failures import ERROR_TOOL_FAILED
from convo.agent.file_write import write_file
from convo.agent.mcp_tools import McpTools
from convo.domain.events import (
    AgentThinkAction,
    AgentThinkObservation,
    CmdOutputMetadata,
    CmdOutputObservation,
    CmdRunAction,
    ErrorObservation,
    Event,
    EventSource,
    FileEditAction,
    FileEditObservation,
    FileReadAction,
    FileReadObservation,
    FileWriteAction,
    FileWriteObservation,
    MCPAction,
    MCPObservation,
    Observation,
    ToolCallMetadata,
    now_iso,
)
from convo.errors import SandboxError, ToolServerError
from convo.runtime.base import CommandResult, Sandbox


class EditorResult(Protocol):
    """What ``convo.agent.editor.EditorResult`` offers (read-only view)."""

    @property
    def content(self) -> str: ...
    @property
    def success(self) -> bool: ...
    @property
    def kind(self) -> str: ...  # "read" or "edit"
    @property
    def old_content(self) -> str | None: ...
    @property
    def new_content(self) -> str | None: ...
    @property
    def diff(self) -> str: ...


class Editor(Protocol):
    """The ``str_replace_editor`` implementation (``convo.agent.editor.FileEditor``)."""

    async def __call__(
        self,
        *,
        command: str,
        path: str,
        file_text: str | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        insert_line: int | None = None,
        view_range: list[int] | None = None,
    ) -> EditorResult: ...


def default_editor(sandbox: Sandbox) -> Editor:
    return FileEditor(sandbox)


# --- observation constructors ----------------------------------------------------------------
def _common(action: Event | None, message: str = "") -> dict[str, Any]:
    """The fields every observation answering ``action`` shares."""
    return {
        "timestamp": now_iso(),
        "source": EventSource.AGENT,
        "message": message,
        "cause": action.id if action is not None and action.id >= 0 else None,
        "tool_call_metadata": action.tool_call_metadata if action is not None else None,
    }


def run_observation(action: CmdRunAction, result: CommandResult) -> CmdOutputObservation:
    command = action.command
    if result.timed_out:
        suffix = (
            "\n[The command timed out and was interrupted. Run long commands in the "
            "background or raise the timeout.]"
        )
    else:
        suffix = f"\n[The command completed with exit code {result.exit_code}.]"
    return CmdOutputObservation(
        **_common(action, f"Command `{command}` executed with exit code {result.exit_code}."),
        content=result.output,
        command=command,
        metadata=CmdOutputMetadata(
            exit_code=result.exit_code, working_dir=result.working_dir, suffix=suffix
        ),
        success=result.exit_code == 0 and not result.timed_out,
    )


def read_observation(action: FileReadAction | FileEditAction, content: str) -> FileReadObservation:
    return FileReadObservation(
        **_common(action, f"I read the file {action.path}."),
        content=content,
        path=action.path,
        impl_source="oh_aci",
    )


def edit_observation(action: FileEditAction, result: EditorResult) -> FileEditObservation:
    return FileEditObservation(
        **_common(action, f"I edited the file {action.path}."),
        content=result.content,
        path=action.path,
        prev_exist=result.old_content is not None,
        old_content=result.old_content,
        new_content=result.new_content,
        impl_source="oh_aci",
        diff=result.diff,
    )


def write_observation(action: FileWriteAction) -> FileWriteObservation:
    """OpenHands' answer to a file write: no content, the path in ``extras``."""
    return FileWriteObservation(
        **_common(action, f"I wrote to the file {action.path}."), path=action.path
    )


def mcp_observation(action: MCPAction, content: str) -> MCPObservation:
    """OpenHands' MCPObservation: the result's text, with the tool's name and arguments."""
    return MCPObservation(
        **_common(action, content), content=content, name=action.name, arguments=action.arguments
    )


def think_observation(action: AgentThinkAction) -> AgentThinkObservation:
    return AgentThinkObservation(**_common(action), content="Your thought has been logged.")


def tool_error(
    content: str,
    *,
    error_id: str,
    action: Event | None = None,
    tool_call_metadata: ToolCallMetadata | None = None,
) -> ErrorObservation:
    """An error observation answering a tool call (so the model sees it as the call's result)."""
    common = _common(action, content)
    if tool_call_metadata is not None:
        common["tool_call_metadata"] = tool_call_metadata
    return ErrorObservation(**common, content=content, error_id=error_id)


# --- execution -------------------------------------------------------------------------------
class ActionExecutor:
    """Runs run/read/edit/think actions and the user's write; finish and message need no
    execution."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        editor: Editor | None = None,
        command_timeout_seconds: float = 120.0,
        mcp: McpTools | None = None,
    ) -> None:
        self.sandbox = sandbox
        self._editor = editor
        self.mcp = mcp
        self.command_timeout_seconds = command_timeout_seconds

    @property
    def editor(self) -> Editor:
        if self._editor is None:
            self._editor = default_editor(self.sandbox)
        return self._editor

    async def execute(self, action: Event) -> Observation:
        """The observation for a stored action. Sandbox failures become error observations."""
        try:
            if isinstance(action, CmdRunAction):
                return await self._run(action)
            if isinstance(action, FileReadAction | FileEditAction):
                return await self._edit(action)
            if isinstance(action, FileWriteAction):
                return await self._write(action)
            if isinstance(action, AgentThinkAction):
                return think_observation(action)
            if isinstance(action, MCPAction):
                return await self._mcp(action)
        except SandboxError as exc:
            return tool_error(f"The tool failed: {exc}", error_id=ERROR_TOOL_FAILED, action=action)
        return tool_error(
            f"Actions of type {action.action!r} cannot be executed.",
            error_id=ERROR_TOOL_FAILED,
            action=action,
        )

    async def _run(self, action: CmdRunAction) -> Observation:
        result = await self.sandbox.run(
            action.command,
            timeout=action.timeout or self.command_timeout_seconds,
            is_input=action.is_input,
        )
        return run_observation(action, result)

    async def _write(self, action: FileWriteAction) -> Observation:
        error = await write_file(
            self.sandbox, action.path, action.content, action.start, action.end
        )
        if error is not None:
            return tool_error(error, error_id=ERROR_TOOL_FAILED, action=action)
        return write_observation(action)

    async def _mcp(self, action: MCPAction) -> Observation:
        name = action.name
        try:
            if self.mcp is None or name not in self.mcp.names:
                raise ToolServerError(f"No MCP server offers a tool named {name!r} now")
            content = await self.mcp.call(name, action.arguments)
        except ToolServerError as exc:
            return tool_error(
                f"MCP {name} failed: {exc}", error_id=ERROR_TOOL_FAILED, action=action
            )
        return mcp_observation(action, content)

    async def _edit(self, action: FileReadAction | FileEditAction) -> Observation:
        if isinstance(action, FileReadAction):
            result = await self.editor(
                command="view", path=action.path, view_range=action.view_range
            )
        else:
            result = await self.editor(
                command=action.command,
                path=action.path,
                file_text=action.file_text,
                old_str=action.old_str,
                new_str=action.new_str,
                insert_line=action.insert_line,
            )
        if not result.success:
            return tool_error(result.content, error_id=ERROR_TOOL_FAILED, action=action)
        if isinstance(action, FileReadAction) or result.kind == "read":
            return read_observation(action, result.content)
        return edit_observation(action, result)
