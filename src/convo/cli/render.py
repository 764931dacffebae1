"""Showing a conversation's events in the terminal: :class:`EventPrinter` (rich, for people)
and :class:`JsonPrinter` (one JSON object per line, for scripts).

Both get every stream message (``show``), notes from the command (``note``, to stderr for
JSON) and the closing summary (``summary``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console
from rich.status import Status
from rich.syntax import Syntax
from rich.text import Text

MAX_OUTPUT_LINES = 30
MAX_DIFF_LINES = 80


@dataclass
class Tally:
    """What a summary says: agent steps, cost, the agent's last state."""

    steps: int = 0
    cost: float = 0.0
    state: str | None = None

    def count(self, event: dict[str, Any]) -> None:
        if event.get("source") == "agent" and event.get("action") not in (None, "system"):
            self.steps += 1  # the system action (prompt and tools) is no step
        metrics = event.get("llm_metrics") or {}
        if "accumulated_cost" in metrics:
            self.cost = float(metrics["accumulated_cost"] or 0.0)
        extras = event.get("extras") or {}
        if event.get("observation") == "agent_state_changed" and extras.get("agent_state"):
            self.state = str(extras["agent_state"])


class Printer(Protocol):
    tally: Tally

    def show(self, kind: str, data: dict[str, Any]) -> None: ...

    def note(self, text: str) -> None: ...

    def summary(self, conversation_id: str, ending: str, seconds: float) -> None: ...

    def close(self) -> None: ...


class JsonPrinter:
    def __init__(self) -> None:
        self.tally = Tally()

    def show(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "event":
            self.tally.count(data)
        sys.stdout.write(json.dumps(data, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        print(f"convo: {text}", file=sys.stderr, flush=True)

    def summary(self, conversation_id: str, ending: str, seconds: float) -> None:
        self.note(
            f"{ending}: {self.tally.steps} steps, ${self.tally.cost:.4f}, {seconds:.1f} s "
            f"(conversation {conversation_id})"
        )

    def close(self) -> None:
        pass


def _clip(text: str, limit: int) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join([*lines[:limit], f"... {len(lines) - limit} more lines"])


class EventPrinter:
    """Commands with their output, edits as diffs, messages, errors; a spinner while the
    agent waits for its LLM."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.tally = Tally()
        self._spinner: Status | None = None

    def _thinking(self, on: bool) -> None:
        if on and self._spinner is None and self.console.is_terminal:
            self._spinner = self.console.status("the agent is thinking...", spinner="dots")
            self._spinner.start()
        elif not on and self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

    def close(self) -> None:
        self._thinking(False)

    def _print(self, *parts: Any) -> None:
        self._thinking(False)
        self.console.print(*parts)

    def note(self, text: str) -> None:
        self._print(Text(text, style="yellow"))

    def show(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "status_update":
            if data.get("type") == "error":
                self._print(Text(f"error: {data.get('message', '')}", style="bold red"))
            return
        if kind == "resume":
            return
        self.tally.count(data)
        if "action" in data:
            self._action(data)
        elif "observation" in data:
            self._observation(data)
        waiting = self.tally.state == "running" and "observation" in data
        self._thinking(waiting)

    def _agent_text(self, text: str) -> None:
        if text.strip():
            self._print(Text(text.strip()))

    def _action(self, event: dict[str, Any]) -> None:
        action = event.get("action")
        args = event.get("args") or {}
        if action == "message":
            if event.get("source") == "user":
                self._print(Text(f"> {args.get('content', event.get('message', ''))}", "cyan"))
            else:
                self._agent_text(str(args.get("content", event.get("message", ""))))
            return
        self._agent_text(str(args.get("thought") or ""))
        if action == "run":
            self._print(Text(f"$ {args.get('command', '')}", style="bold"))
        elif action == "edit":
            self._print(Text(f"edit {args.get('command', '')} {args.get('path', '')}", "bold"))
        elif action == "read":
            self._print(Text(f"read {args.get('path', '')}", style="bold"))
        elif action == "think":
            self._print(Text(f"(thinking) {args.get('thought', '')}", style="italic dim"))
        elif action == "call_tool_mcp":
            arguments = json.dumps(args.get("arguments") or {}, ensure_ascii=False)
            self._print(Text(f"tool {args.get('name', '')} {arguments}", style="bold"))
        elif action == "finish":
            text = args.get("final_thought") or event.get("message") or "finished"
            self._print(Text(str(text), style="bold green"))

    def _observation(self, event: dict[str, Any]) -> None:
        kind = event.get("observation")
        extras = event.get("extras") or {}
        content = str(event.get("content") or "")
        if kind == "run":
            if content.strip():
                self._print(Text(_clip(content, MAX_OUTPUT_LINES), style="dim"))
            code = (extras.get("metadata") or {}).get("exit_code")
            if code not in (0, None):
                self._print(Text(f"exit code {code}", style="red"))
        elif kind == "mcp":
            self._print(Text(_clip(content, MAX_OUTPUT_LINES), style="dim"))
        elif kind == "edit":
            diff = str(extras.get("diff") or "")
            if diff.strip():
                self._print(Syntax(_clip(diff, MAX_DIFF_LINES), "diff", theme="ansi_dark"))
            else:
                self._print(Text(content, style="dim"))
        elif kind == "error":
            self._print(Text(f"error: {content}", style="bold red"))
        elif kind == "agent_state_changed":
            state = extras.get("agent_state")
            if state in ("error", "stopped", "paused", "rejected"):
                reason = f": {extras['reason']}" if extras.get("reason") else ""
                self._print(Text(f"[agent {state}{reason}]", style="yellow"))

    def summary(self, conversation_id: str, ending: str, seconds: float) -> None:
        style = "bold green" if ending == "finished" else "bold yellow"
        self._print(
            Text(
                f"{ending} · {self.tally.steps} steps · ${self.tally.cost:.4f} · "
                f"{seconds:.1f} s · conversation {conversation_id}",
                style=style,
            )
        )
