"""DemoLLM: convo's built-in scripted model, chosen with the model name ``demo``.

No provider is called and no key is needed: it lets a newcomer watch a whole conversation.
It does a small, real task in the workspace, one step per call, deciding each step from the
messages alone (so a resumed conversation carries on where it was):

1. explores the workspace (``pwd`` and ``ls``);
2. writes a small Python script there with the file editor;
3. runs it;
4. finishes, saying what it did.

After that, any further message gets a plain-text answer. Every message it writes says
that it is the demo model.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

from convo.llm.base import LLMResponse, LLMUsage, ToolCall

DEMO_MODEL = "demo"
DEMO_LABEL = "[demo model]"
SCRIPT_NAME = "convo_demo.py"

_WORKSPACE = re.compile(r"Your workspace is (\S+?)\.\s")
_ids = itertools.count(1)

_SCRIPT = '''\
"""Written by convo's demo model: counts the words of the task it was given."""

import collections
import re

TASK = {task!r}

words = re.findall(r"[a-z']+", TASK.lower())
print(f"The task has {{len(words)}} words.")
for word, count in collections.Counter(words).most_common(3):
    print(f"  {{word}}: {{count}}")
'''


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # text and image parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tool_names(message: dict[str, Any]) -> list[str]:
    calls = message.get("tool_calls") or []
    return [str((call.get("function") or {}).get("name", "")) for call in calls]


class DemoLLM:
    """An ``LLMClient`` that plays a short, fixed task; ``delay`` imitates thinking time."""

    def __init__(self, delay: float = 0.3) -> None:
        self.delay = delay

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],  # noqa: ARG002  (it knows convo's tools by name)
    ) -> LLMResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        system = next((m for m in messages if m.get("role") == "system"), {})
        match = _WORKSPACE.search(_text(system.get("content")))
        workspace = match.group(1) if match else "."
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        task = _text(messages[users[-1]]["content"]) if users else ""
        done_before = any("finish" in _tool_names(m) for m in messages)
        if done_before:
            return _reply(
                f"{DEMO_LABEL} I am convo's scripted demo model, so I can only play my one "
                "short task. Set CONVO_LLM_MODEL (and CONVO_LLM_API_KEY) to a real model to "
                "get real work done."
            )
        since_user = messages[users[-1] + 1 :] if users else messages
        step = sum(1 for m in since_user if m.get("role") == "assistant" and _tool_names(m))
        return _step(step, workspace, task)


def _step(step: int, workspace: str, task: str) -> LLMResponse:
    script = f"{workspace.rstrip('/')}/{SCRIPT_NAME}"
    if step == 0:
        return _call(
            "execute_bash",
            {"command": "pwd && ls -la"},
            f"{DEMO_LABEL} Hello! I am convo's built-in demo model: no LLM is called and "
            "nothing here needs a key. I will do a small, real task in the workspace. "
            "First, a look around.",
        )
    if step == 1:
        return _call(
            "str_replace_editor",
            {"command": "create", "path": script, "file_text": _SCRIPT.format(task=task)},
            f"{DEMO_LABEL} Now I write a small Python script that counts the words of your task.",
        )
    if step == 2:
        return _call(
            "execute_bash",
            {"command": f"python3 {SCRIPT_NAME}"},
            f"{DEMO_LABEL} Let me run it.",
        )
    return _call(
        "finish",
        {
            "message": f"{DEMO_LABEL} Done: I explored the workspace, wrote {SCRIPT_NAME} "
            "and ran it. This was a scripted demo; set CONVO_LLM_MODEL to a real model "
            "for your own tasks."
        },
        None,
    )


def _call(name: str, arguments: dict[str, Any], content: str | None) -> LLMResponse:
    number = next(_ids)
    return LLMResponse(
        content=content,
        tool_calls=[ToolCall(id=f"demo_call_{number}", name=name, arguments=json.dumps(arguments))],
        usage=LLMUsage(),
        response_id=f"demo-{number}",
    )


def _reply(content: str) -> LLMResponse:
    return LLMResponse(content=content, usage=LLMUsage(), response_id=f"demo-{next(_ids)}")
