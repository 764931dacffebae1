"""Repository instructions and microagents, read from a conversation's workspace.

Where they are looked for: the workspace itself and each directory directly inside it (a
repository is cloned into ``<workspace>/<repo-name>``, as OpenHands does).

- ``AGENTS.md`` and the *repo* microagents (``.openhands/microagents/*.md`` without
  ``triggers``, ``repo.md`` first) are repository instructions: they go into the system
  prompt when the conversation starts (``repository_instructions``).
- *Knowledge* microagents (with ``triggers`` in their YAML front matter) are recalled when a
  user message mentions a trigger (case-insensitive substring, as OpenHands matches): the
  message's ``recall`` observation carries them (``extras.microagent_knowledge``, see
  ``convo.agent.recall``) and the LLM history shows them as a user message right after the
  message that triggered them (``convo.agent.history``).

Front matter is parsed with PyYAML when it is importable (litellm already depends on it), else
by a small reader that understands ``key: value`` and ``- item`` lists, which is all
microagent headers use. Nothing here raises on a malformed file: it is read as plain text.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from convo.domain.events import (
    MicroagentKnowledge,
    RecallObservation,
)
from convo.errors import SandboxError
from convo.runtime.workspace import Workspace

logger = logging.getLogger(__name__)

MICROAGENT_DIR = ".openhands/microagents"
_MAX_DEPTH = 8
AGENTS_FILE = "AGENTS.md"
MAX_FILE_CHARS = 30_000  # a larger file is cut, so one file cannot flood the prompt


@dataclass(frozen=True)
class Microagent:
    name: str
    type: str  # "repo" (always on) or "knowledge" (recalled on a trigger)
    content: str
    triggers: list[str] = field(default_factory=list)
    path: str = ""  # relative to the workspace

    def to_wire(self) -> dict[str, Any]:
        """The shape ``GET /api/conversations/{id}/microagents`` lists."""
        return {
            "name": self.name,
            "type": self.type,
            "content": self.content,
            "triggers": list(self.triggers),
            "inputs": [],
            "tools": [],
        }


# --- front matter --------------------------------------------------------------------------
def _small_yaml(head: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    key: str | None = None
    for line in head.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("- ") and key is not None:
            items = meta.setdefault(key, [])
            if isinstance(items, list):
                items.append(stripped[2:].strip().strip("'\""))
        elif ":" in stripped:
            key, _, value = stripped.partition(":")
            key = key.strip()
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                meta[key] = [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
            else:
                meta[key] = value.strip("'\"") if value else []
    return meta


def _parse_yaml(head: str) -> dict[str, Any]:
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        return _small_yaml(head)
    try:
        loaded = yaml.safe_load(head)
    except yaml.YAMLError:
        return _small_yaml(head)
    return loaded if isinstance(loaded, dict) else {}


def parse_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The ``---``-delimited header of a microagent (as a dict) and its body."""
    if not text.startswith("---"):
        return {}, text
    head, sep, body = text[3:].partition("\n---")
    if not sep:
        return {}, text
    return _parse_yaml(head), body.split("\n", 1)[1] if "\n" in body else ""


# --- reading a workspace ---------------------------------------------------------------------
def _read(workspace: Workspace, path: str) -> str:
    try:
        data = workspace.read_bytes(path, 4 * MAX_FILE_CHARS)
    except (OSError, SandboxError) as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return ""
    return data.decode("utf-8", errors="replace")[:MAX_FILE_CHARS]


def _kind(workspace: Workspace, path: str) -> str:
    """The kind of ``path``; "other" for a path leading outside the workspace or changed
    while it was walked."""
    try:
        return workspace.kind(path)
    except (OSError, SandboxError):
        return "other"


def _roots(workspace: Workspace) -> list[str]:
    """The workspace ("") and the directories directly inside it (not symlinks)."""
    try:
        entries = workspace.list_dir("")
    except (OSError, SandboxError):
        return []
    return ["", *(f"{e.name}/" for e in entries if e.is_dir and e.name != ".git")]


def _microagent(workspace: Workspace, path: str) -> Microagent:
    meta, body = parse_front_matter(_read(workspace, path))
    raw = meta.get("triggers")
    triggers = [str(t) for t in raw if str(t).strip()] if isinstance(raw, list) else []
    return Microagent(
        name=str(meta.get("name") or PurePosixPath(path).stem),
        type="knowledge" if triggers else "repo",
        content=body,
        triggers=triggers,
        path=path,
    )


def load_microagents(workspace: Workspace) -> list[Microagent]:
    """Every microagent of the workspace and of the repositories directly inside it (read
    descriptor-relative: a symlink leads nowhere outside the workspace)."""
    found: list[Microagent] = []
    for root in _roots(workspace):
        folder = root + MICROAGENT_DIR
        try:
            entries = workspace.tree(folder, _MAX_DEPTH, hidden=True)
        except (OSError, SandboxError):
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name.rsplit("/", 1)[-1]
            if entry.is_dir or not name.endswith(".md") or name.lower() == "readme.md":
                continue
            path = f"{folder}/{entry.name}"
            if _kind(workspace, path) == "file":
                found.append(_microagent(workspace, path))
    return found


def repository_instructions(workspace: Workspace) -> list[tuple[str, str]]:
    """(source, text) of each AGENTS.md and repo microagent, for the system prompt."""
    found: list[tuple[str, str]] = []
    for root in _roots(workspace):
        agents = root + AGENTS_FILE
        if _kind(workspace, agents) == "file":
            text = _read(workspace, agents)
            if text.strip():
                found.append((agents, text))
    repo = [m for m in load_microagents(workspace) if m.type == "repo" and m.content.strip()]
    repo.sort(key=lambda m: (PurePosixPath(m.path).name != "repo.md", m.path))
    found.extend((m.path, m.content) for m in repo)
    return found


def format_instructions(found: Sequence[tuple[str, str]]) -> str:
    """Repository instructions as system-prompt sections, one per file."""
    return "\n\n".join(
        f'<repository_instructions source="{source}">\n{text.strip()}\n</repository_instructions>'
        for source, text in found
    )


# --- recall ----------------------------------------------------------------------------------
def triggered(microagents: Sequence[Microagent], text: str) -> list[tuple[Microagent, str]]:
    """The knowledge microagents a message mentions, each with the first trigger it matched."""
    lowered = text.lower()
    matches: list[tuple[Microagent, str]] = []
    for agent in microagents:
        for trigger in agent.triggers:
            if trigger.lower() in lowered:
                matches.append((agent, trigger))
                break
    return matches


def recall_text(event: RecallObservation) -> str:
    """A recall observation as the LLM reads it (OpenHands' EXTRA_INFO wording)."""
    parts = []
    for item in event.microagent_knowledge:
        parts.append(
            "<EXTRA_INFO>\n"
            f"The following information has been included based on a keyword match for "
            f'"{item.trigger}". It may or may not be relevant to the user\'s request.'
            f"\n\n{item.content.strip()}\n</EXTRA_INFO>"
        )
    return "\n\n".join(parts)


def knowledge(workspace: Workspace, text: str) -> list[MicroagentKnowledge]:
    """The knowledge of each knowledge microagent ``text`` triggers (none for no text)."""
    if not text:
        return []
    agents = [m for m in load_microagents(workspace) if m.type == "knowledge"]
    return [
        MicroagentKnowledge(name=agent.name, trigger=trigger, content=agent.content)
        for agent, trigger in triggered(agents, text)
    ]
