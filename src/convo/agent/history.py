"""Turning a conversation's stored events into OpenAI chat messages for the LLM.

- user ``message`` actions → user messages (with image parts when they carry images and the
  model takes images, and the paths of attached files);
- agent ``message`` actions → assistant text messages;
- events with ``tool_call_metadata`` → the assistant message of their model response (once,
  from ``model_response``), immediately followed by one ``tool`` message per tool call of that
  response, paired by ``tool_call_id``. A call with no recorded result gets a placeholder, so
  the message list is always valid for the provider;
- agent-loop error observations (``error_id`` starting ``AGENT_ERROR$``) with no tool call →
  user messages, so the model learns why it was stopped;
- the user's own run/read/edit/write actions and their results → user messages;
- a ``condensation`` action with a summary (placed by ``convo.agent.condenser.view``) and
  ``recall`` observations with microagent knowledge → user messages; other events are not
  shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convo.agent.failures import AGENT_ERROR_PREFIX
from convo.agent.microagents import recall_text
from convo.domain.events import (
    CmdOutputObservation,
    CmdRunAction,
    CondensationAction,
    ErrorObservation,
    Event,
    EventSource,
    FileEditAction,
    FileReadAction,
    FileWriteAction,
    MessageAction,
    Observation,
    RecallObservation,
    ToolCallMetadata,
)

_USER_ACTIONS = (CmdRunAction, FileReadAction, FileEditAction, FileWriteAction)
_FINISHED_PLACEHOLDER = "The task was marked as finished."
_MISSING_PLACEHOLDER = "The tool call was not executed (interrupted)."
_SUMMARY_TEMPLATE = (
    "<CONDENSED_HISTORY>\nEarlier events of this task were removed from your context to "
    "save space. This summary replaces them:\n{summary}\n</CONDENSED_HISTORY>"
)


def observation_text(observation: Event) -> str:
    """An observation as the model reads it."""
    content = observation.content if isinstance(observation, Observation) else ""
    if isinstance(observation, CmdOutputObservation):
        working_dir = observation.metadata.working_dir
        text = f"{content}{observation.metadata.suffix}"
        if working_dir:
            text += f"\n[Current working directory: {working_dir}]"
        return text
    if isinstance(observation, ErrorObservation):
        return f"ERROR: {content}"
    return content


def _user_message(event: MessageAction, vision: bool) -> dict[str, Any]:
    """The user's text, the files they attached (by path, where the text does not name them
    already) and their images: image parts for a model that takes images, else a note."""
    text = event.content
    files = [str(url) for url in event.file_urls or [] if str(url) not in text]
    if files:
        text += "\n\nFiles the user attached: " + ", ".join(files)
    images = [str(url) for url in event.image_urls or []]
    if images and not vision:
        text += f"\n\n[The user attached {len(images)} image(s); this model cannot view images.]"
    if not images or not vision:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts.extend({"type": "image_url", "image_url": {"url": url}} for url in images)
    return {"role": "user", "content": parts}


def _response_key(metadata: ToolCallMetadata) -> str:
    return str(metadata.model_response.get("id") or metadata.tool_call_id)


def _assistant_from_metadata(metadata: ToolCallMetadata) -> dict[str, Any]:
    response = metadata.model_response
    choices = response.get("choices") or [{}]
    stored = choices[0].get("message") or {}
    message: dict[str, Any] = {"role": "assistant", "content": stored.get("content")}
    calls = stored.get("tool_calls")
    if not calls:  # an event from elsewhere without the full response: rebuild its one call
        calls = [
            {
                "id": metadata.tool_call_id,
                "type": "function",
                "function": {"name": metadata.function_name, "arguments": "{}"},
            }
        ]
    message["tool_calls"] = calls
    return message


def _tool_results(events: Sequence[Event]) -> dict[str, Event]:
    results: dict[str, Event] = {}
    for event in events:
        metadata = event.tool_call_metadata
        if not isinstance(event, Observation) or metadata is None:
            continue
        results.setdefault(metadata.tool_call_id, event)
    return results


def _tool_messages(assistant: dict[str, Any], results: dict[str, Event]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for call in assistant["tool_calls"]:
        call_id = str(call.get("id", ""))
        name = str((call.get("function") or {}).get("name", ""))
        result = results.get(call_id)
        if result is not None:
            content = observation_text(result)
        elif name == "finish":
            content = _FINISHED_PLACEHOLDER
        else:
            content = _MISSING_PLACEHOLDER
        messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": content})
    return messages


def _plain_message(event: Event, vision: bool) -> dict[str, Any] | None:
    """The message for an event outside any tool call, or None if the model need not see it."""
    if isinstance(event, MessageAction):
        if event.source == EventSource.USER:
            return _user_message(event, vision)
        return {"role": "assistant", "content": event.content}
    if isinstance(event, CondensationAction):
        summary = event.summary or ""
        return {"role": "user", "content": _SUMMARY_TEMPLATE.format(summary=summary)}
    if isinstance(event, RecallObservation):
        text = recall_text(event)
        return {"role": "user", "content": text} if text else None
    if isinstance(event, ErrorObservation) and event.error_id.startswith(AGENT_ERROR_PREFIX):
        return {"role": "user", "content": f"ERROR: {event.content or event.message}"}
    return None


def _user_action_text(event: Event) -> str:
    if isinstance(event, CmdRunAction):
        return f"User executed the command:\n{event.command}"
    if isinstance(event, FileReadAction):
        return f"User read the file {event.path}"
    if isinstance(event, FileWriteAction):
        return f"User wrote the file {event.path}"
    if isinstance(event, FileEditAction):
        return f"User edited the file {event.path} ({event.command})"
    return f"User action: {event.action}"


def _user_actions(events: Sequence[Event]) -> set[int]:
    """Ids of the user's own run/read/edit actions that were carried out."""
    return {
        e.id
        for e in events
        if e.source == EventSource.USER
        and isinstance(e, _USER_ACTIONS)
        and e.confirmation_state == "confirmed"
    }


def build_messages(
    system_prompt: str, events: Sequence[Event], *, vision: bool = True
) -> list[dict[str, Any]]:
    """The LLM messages for a system prompt and the stored events, in order.

    The user's own commands (the web terminal) and their results reach the model as user
    messages, as in OpenHands, so it knows what the user changed. Images the user attached
    are image parts when ``vision`` (the model takes images), else a note in the text."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
    results = _tool_results(events)
    by_user = _user_actions(events)
    seen_responses: set[str] = set()
    for event in events:
        if event.id in by_user and event.id >= 0:
            messages.append({"role": "user", "content": _user_action_text(event)})
            continue
        if isinstance(event, Observation) and event.cause in by_user:
            text = observation_text(event)
            messages.append({"role": "user", "content": f"Observed result:\n{text}"})
            continue
        metadata = event.tool_call_metadata
        if metadata:
            key = _response_key(metadata)
            if key in seen_responses:
                continue
            seen_responses.add(key)
            assistant = _assistant_from_metadata(metadata)
            messages.append(assistant)
            messages.extend(_tool_messages(assistant, results))
            continue
        message = _plain_message(event, vision)
        if message is not None:
            messages.append(message)
    return messages


def since_last_user_message(events: Sequence[Event]) -> list[Event]:
    """The events after the last user message (all of them if there is none)."""
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if isinstance(event, MessageAction) and event.source == EventSource.USER:
            return list(events[index + 1 :])
    return list(events)
