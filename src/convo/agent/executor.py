"""Carrying out actions in the sandbox, and the observation events that report the results.

Each observation has ``cause`` = the action's id and repeats the action's
``tool_call_metadata``, so the history can pair it with the model's tool call.
"""

from __future__ import annotations

from typing import Any, Protocol

from convo.agent.editor import FileEditor
from convo.agent.failures import ERROR_TOOL_FAILED
from convo.agent.file_write import WRITE, write_file
from convo.agent.mcp_tools import McpTools
from convo.domain.events import ActionType, Event, EventSource, ObservationType, now_iso
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
def _observation(
    kind: ObservationType,
    content: str,
    extras: dict[str, Any],
    *,
    action: Event | None,
    message: str = "",
    success: bool | None = None,
    tool_call_metadata: dict[str, Any] | None = None,
) -> Event:
    return Event(
        timestamp=now_iso(),
        source=EventSource.AGENT,
        message=message,
        cause=action.id if action is not None and action.id >= 0 else None,
        observation=kind,
        content=content,
        extras=extras,
        success=success,
        tool_call_metadata=tool_call_metadata
        or (action.tool_call_metadata if action is not None else None),
    )


def run_observation(action: Event, result: CommandResult) -> Event:
    command = str((action.args or {}).get("command", ""))
    if result.timed_out:
        suffix = (
            "\n[The command timed out and was interrupted. Run long commands in the "
            "background or raise the timeout.]"
        )
    else:
        suffix = f"\n[The command completed with exit code {result.exit_code}.]"
    metadata = {
        "exit_code": result.exit_code,
        "pid": -1,
        "username": None,
        "hostname": None,
        "working_dir": result.working_dir,
        "py_interpreter_path": None,
        "prefix": "",
        "suffix": suffix,
    }
    return _observation(
        ObservationType.RUN,
        result.output,
        {"command": command, "metadata": metadata, "hidden": False},
        action=action,
        success=result.exit_code == 0 and not result.timed_out,
        message=f"Command `{command}` executed with exit code {result.exit_code}.",
    )


def read_observation(action: Event, content: str) -> Event:
    path = str((action.args or {}).get("path", ""))
    return _observation(
        ObservationType.READ,
        content,
        {"path": path, "impl_source": "oh_aci"},
        action=action,
        message=f"I read the file {path}.",
    )


def edit_observation(action: Event, result: EditorResult) -> Event:
    path = str((action.args or {}).get("path", ""))
    extras = {
        "path": path,
        "prev_exist": result.old_content is not None,
        "old_content": result.old_content,
        "new_content": result.new_content,
        "impl_source": "oh_aci",
        "diff": result.diff,
    }
    return _observation(
        ObservationType.EDIT,
        result.content,
        extras,
        action=action,
        message=f"I edited the file {path}.",
    )


def write_observation(action: Event) -> Event:
    """OpenHands' answer to a file write: no content, the path in ``extras``."""
    path = str((action.args or {}).get("path", ""))
    return Event(
        timestamp=now_iso(),
        source=EventSource.AGENT,
        message=f"I wrote to the file {path}.",
        cause=action.id if action.id >= 0 else None,
        observation=WRITE,
        content="",
        extras={"path": path},
    )


def mcp_observation(action: Event, content: str) -> Event:
    """OpenHands' MCPObservation: the result's text, with the tool's name and arguments."""
    args = action.args or {}
    extras = {"name": str(args.get("name", "")), "arguments": args.get("arguments") or {}}
    return _observation(ObservationType.MCP, content, extras, action=action, message=content)


def think_observation(action: Event) -> Event:
    return _observation(ObservationType.THINK, "Your thought has been logged.", {}, action=action)


def tool_error(
    content: str,
    *,
    error_id: str,
    action: Event | None = None,
    tool_call_metadata: dict[str, Any] | None = None,
) -> Event:
    """An error observation answering a tool call (so the model sees it as the call's result)."""
    return _observation(
        ObservationType.ERROR,
        content,
        {"error_id": error_id},
        action=action,
        message=content,
        tool_call_metadata=tool_call_metadata,
    )


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

    async def execute(self, action: Event) -> Event:
        """The observation for a stored action. Sandbox failures become error observations."""
        try:
            if action.action == ActionType.RUN:
                return await self._run(action)
            if action.action in (ActionType.READ, ActionType.EDIT):
                return await self._edit(action)
            if action.action == WRITE:
                return await self._write(action)
            if action.action == ActionType.THINK:
                return think_observation(action)
            if action.action == ActionType.MCP:
                return await self._mcp(action)
        except SandboxError as exc:
            return tool_error(f"The tool failed: {exc}", error_id=ERROR_TOOL_FAILED, action=action)
        return tool_error(
            f"Actions of type {action.action!r} cannot be executed.",
            error_id=ERROR_TOOL_FAILED,
            action=action,
        )

    async def _run(self, action: Event) -> Event:
        args = action.args or {}
        result = await self.sandbox.run(
            str(args.get("command", "")),
            timeout=action.timeout or self.command_timeout_seconds,
            is_input=bool(args.get("is_input", False)),
        )
        return run_observation(action, result)

    async def _write(self, action: Event) -> Event:
        args = action.args or {}
        start, end = args.get("start", 0), args.get("end", -1)
        error = await write_file(
            self.sandbox,
            str(args.get("path", "")),
            str(args.get("content", "")),
            start if isinstance(start, int) else 0,
            end if isinstance(end, int) else -1,
        )
        if error is not None:
            return tool_error(error, error_id=ERROR_TOOL_FAILED, action=action)
        return write_observation(action)

    async def _mcp(self, action: Event) -> Event:
        args = action.args or {}
        name = str(args.get("name", ""))
        arguments = args.get("arguments")
        try:
            if self.mcp is None or name not in self.mcp.names:
                raise ToolServerError(f"No MCP server offers a tool named {name!r} now")
            content = await self.mcp.call(name, arguments if isinstance(arguments, dict) else {})
        except ToolServerError as exc:
            return tool_error(
                f"MCP {name} failed: {exc}", error_id=ERROR_TOOL_FAILED, action=action
            )
        return mcp_observation(action, content)

    async def _edit(self, action: Event) -> Event:
        args = action.args or {}
        command = "view" if action.action == ActionType.READ else str(args.get("command"))
        result = await self.editor(
            command=command,
            path=str(args.get("path", "")),
            file_text=args.get("file_text"),
            old_str=args.get("old_str"),
            new_str=args.get("new_str"),
            insert_line=args.get("insert_line"),
            view_range=args.get("view_range"),
        )
        if not result.success:
            return tool_error(result.content, error_id=ERROR_TOOL_FAILED, action=action)
        if result.kind == "read":
            return read_observation(action, result.content)
        return edit_observation(action, result)
