"""Event JSON as OpenHands 0.53 writes it, and every payload convo has stored, keep loading.

``golden/openhands/``: one event per wire kind, in the shape OpenHands 0.53 serialises
(``events/serialization/event.py``). Each loads as its kind's class (never the fallback) and
serialises back to the same JSON.

``golden/convo/``: payloads as earlier versions of convo stored them (checked in, never
edited: add a file when the stored shape changes). Each loads as its kind's class, keeps
every key and value it had, and writes JSON that loads back to the same event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import convo.domain.events as events
from convo.domain.events import (
    Event,
    MessageAction,
    UnknownAction,
    UnknownObservation,
    parse_event,
)

GOLDEN = Path(__file__).parent / "golden"
OPENHANDS = sorted((GOLDEN / "openhands").glob("*.json"))
CONVO = [
    pytest.param(payload, id=f"{path.stem}-{index}")
    for path in sorted((GOLDEN / "convo").glob("*.json"))
    for index, payload in enumerate(json.loads(path.read_text())["payloads"])
]


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _kept(original: Any, written: Any) -> bool:
    """Every key and value of ``original`` is in ``written`` (which may add defaults). A null
    ``security_risk`` may go: OpenHands leaves it out, and so does convo now."""
    if isinstance(original, dict):
        return isinstance(written, dict) and all(
            (k == "security_risk" and v is None) or (k in written and _kept(v, written[k]))
            for k, v in original.items()
        )
    return bool(original == written)


def test_the_corpora_are_there() -> None:
    assert len(OPENHANDS) >= 30 and len(CONVO) >= 40


@pytest.mark.parametrize("path", OPENHANDS, ids=[p.stem for p in OPENHANDS])
def test_openhands_events_load_as_their_kind_and_serialise_back_equal(path: Path) -> None:
    golden = json.loads(path.read_text())
    event = parse_event(golden["event"])
    assert type(event).__name__ == golden["class"]
    assert _json(event.to_wire()) == golden["event"]
    assert json.loads(event.model_dump_json()) == _json(event.to_wire())


@pytest.mark.parametrize("payload", CONVO)
def test_every_payload_convo_stored_keeps_loading(payload: dict[str, Any]) -> None:
    event = Event.from_wire(payload)
    assert not isinstance(event, UnknownAction | UnknownObservation)
    written = _json(event.to_wire())
    assert _kept(payload, written)
    assert parse_event(written) == event


def test_an_unknown_kind_keeps_everything_it_was_given() -> None:
    payload = {
        "id": 4,
        "timestamp": "2025-08-14T10:21:07.512334",
        "source": "agent",
        "message": "",
        "action": "teleport",
        "args": {"to": "mars", "nested": {"x": [1, None]}},
        "timeout": 5,
        "something_new": True,
    }
    event = parse_event(payload)
    assert isinstance(event, UnknownAction) and event.action == "teleport"
    assert event.args == {"to": "mars", "nested": {"x": [1, None]}}
    assert _json(event.to_wire()) == payload
    observation = parse_event({"observation": "telepathy", "content": "hm", "extras": {"a": 1}})
    assert isinstance(observation, UnknownObservation) and observation.extras == {"a": 1}


def test_a_payload_that_does_not_fit_its_kind_loads_as_the_fallback() -> None:
    payload = {"id": 2, "source": "agent", "observation": "run", "extras": {"metadata": "x"}}
    event = parse_event(payload)
    assert isinstance(event, UnknownObservation) and event.observation == "run"
    assert _json(event.to_wire()) == payload


def test_unknown_keys_of_a_known_kind_are_kept() -> None:
    payload = MessageAction(content="hi").to_wire() | {"future_top": 1}
    payload["args"] = payload["args"] | {"future_arg": [1]}
    event = parse_event(payload)
    assert isinstance(event, MessageAction) and event.content == "hi"
    assert _json(event.to_wire()) == _json(payload)


def test_adding_a_kind_is_one_class() -> None:
    class TeleportAction(events.Action):
        kind = "teleport_test"
        to: str = ""

    try:
        event = Event.from_wire({"action": "teleport_test", "args": {"to": "mars"}})
        assert isinstance(event, TeleportAction) and event.to == "mars"
    finally:
        from convo.domain.events.base import ACTION_KINDS

        ACTION_KINDS.pop("teleport_test")
    assert isinstance(Event.from_wire({"action": "teleport_test"}), UnknownAction)
