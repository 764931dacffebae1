"""Secret values never reach stored events, without destroying the events' text."""

from __future__ import annotations

from convo.domain.events import (
    SECRET_PLACEHOLDER,
    CmdOutputObservation,
    Event,
    EventSource,
    mask_secrets,
    message_action,
)


def test_secrets_are_hidden_in_nested_strings_longest_first() -> None:
    event = Event.from_wire(
        {
            "source": EventSource.AGENT,
            "observation": "run",
            "content": "token=ghp_abcdef and ghp_abcdef123",
            "extras": {"command": "echo ghp_abcdef", "metadata": {"env": ["ghp_abcdef123"]}},
        }
    )
    masked = mask_secrets(event, ["ghp_abcdef", "ghp_abcdef123"])
    assert isinstance(masked, CmdOutputObservation)
    assert masked.content == f"token={SECRET_PLACEHOLDER} and {SECRET_PLACEHOLDER}"
    assert masked.command == f"echo {SECRET_PLACEHOLDER}"
    assert masked.extras["metadata"]["env"] == [SECRET_PLACEHOLDER]
    assert "ghp_" not in str(masked.to_wire())


def test_the_message_is_masked_but_ids_and_kinds_are_kept() -> None:
    event = message_action("use sk-live-123456", EventSource.USER).stored(3)
    masked = mask_secrets(event, ["sk-live-123456"])
    assert masked.message == f"use {SECRET_PLACEHOLDER}"
    assert (masked.id, masked.action, masked.source) == (3, "message", EventSource.USER)


def test_very_short_values_are_hidden_only_when_whole() -> None:
    event = Event.from_wire(
        {
            "source": EventSource.AGENT,
            "observation": "run",
            "content": "kick the can",
            "extras": {"value": "k"},
        }
    )
    masked = mask_secrets(event, ["k", ""])
    assert isinstance(masked, CmdOutputObservation)
    assert masked.content == "kick the can"
    assert masked.extras["value"] == SECRET_PLACEHOLDER
