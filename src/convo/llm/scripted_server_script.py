"""The scripts of the scripted LLM server (:mod:`convo.llm.scripted_server`): their steps,
the JSON file format, and which step a request gets.

A step is a tool call, a plain text answer or an HTTP error, each optionally after a delay.
The script file is ``{"steps": [...], "when_exhausted": step | null, "per_conversation": bool,
"scripts": {"NAME": {"steps": [...], "when_exhausted": step | null}}}`` or a bare list of
steps; a step is ``{"tool": name, "arguments": {...}}``, ``{"text": "..."}`` or
``{"error": 401, "message": "..."}``, each with an optional ``"delay": seconds``.

A request whose first user message holds a marker ``[script:NAME]`` follows the named
script; a conversation's position in a script is the number of assistant messages in its
request (:func:`assistant_turns`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

_MARKER = re.compile(r"\[script:([\w.-]+)\]")


@dataclass(frozen=True)
class ScriptStep:
    """One scripted answer. Build with :func:`tool_call`, :func:`text` or :func:`http_error`."""

    kind: Literal["tool_call", "text", "error"]
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    content: str | None = None
    status: int = 200
    delay_seconds: float = 0.0


def tool_call(
    name: str,
    arguments: dict[str, Any] | None = None,
    *,
    content: str | None = None,
    delay: float = 0.0,
) -> ScriptStep:
    return ScriptStep(
        "tool_call", name=name, arguments=arguments or {}, content=content, delay_seconds=delay
    )


def text(content: str, *, delay: float = 0.0) -> ScriptStep:
    return ScriptStep("text", content=content, delay_seconds=delay)


def http_error(status: int, message: str = "", *, delay: float = 0.0) -> ScriptStep:
    return ScriptStep(
        "error", status=status, content=message or f"Scripted error {status}", delay_seconds=delay
    )


FINISH = tool_call("finish", {"message": "Done."})


def step_from_json(data: dict[str, Any]) -> ScriptStep:
    delay = float(data.get("delay", 0.0))
    if "tool" in data:
        return tool_call(
            str(data["tool"]),
            dict(data.get("arguments", {})),
            content=data.get("content"),
            delay=delay,
        )
    if "text" in data:
        return text(str(data["text"]), delay=delay)
    if "error" in data:
        return http_error(int(data["error"]), str(data.get("message", "")), delay=delay)
    raise ValueError(f"Unknown script step: {data!r}")


@dataclass(frozen=True)
class Script:
    """The steps of one conversation's script and the step once they run out."""

    steps: Sequence[ScriptStep]
    when_exhausted: ScriptStep | None = None

    def step(self, index: int) -> ScriptStep | None:
        return self.steps[index] if index < len(self.steps) else self.when_exhausted


def script_from_json(data: Any) -> Script:
    if isinstance(data, list):
        return Script([step_from_json(s) for s in data])
    exhausted = data.get("when_exhausted")
    return Script(
        [step_from_json(s) for s in data.get("steps", [])],
        step_from_json(exhausted) if exhausted else None,
    )


def load_script(path: Path) -> tuple[list[ScriptStep], ScriptStep | None]:
    """Read a script file; returns the steps and the step used once they run out."""
    script = script_from_json(json.loads(path.read_text()))
    return list(script.steps), script.when_exhausted


def load_scripts(path: Path) -> tuple[dict[str, Script], bool]:
    """A script file's named scripts and whether it counts steps per conversation."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return {}, False
    named = {str(k): script_from_json(v) for k, v in (data.get("scripts") or {}).items()}
    return named, bool(data.get("per_conversation", False))


def script_name(request: dict[str, Any]) -> str | None:
    """The ``[script:NAME]`` marker of the request's first user message, if any."""
    for message in request.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            found = _MARKER.search(json.dumps(message.get("content")))
            return found.group(1) if found else None
    return None


def assistant_turns(request: dict[str, Any]) -> int:
    """How many answers the conversation has had: its assistant messages."""
    return sum(
        1
        for message in request.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "assistant"
    )
