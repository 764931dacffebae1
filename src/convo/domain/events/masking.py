"""Secret values never reach stored events: every string of an event (but its id, time,
source, cause and kind) has each secret value replaced by ``<secret_hidden>``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from convo.domain.events.base import Event, storable

SECRET_PLACEHOLDER = "<secret_hidden>"
_TOP_LEVEL_KEPT = {"id", "timestamp", "source", "cause", "action", "observation"}
# Shorter values are hidden only where a whole string equals them: replacing every "k" or
# "ab" inside every text would destroy the events while protecting nothing.
MIN_SUBSTRING_SECRET = 4


def _ordered(secrets: Iterable[str]) -> list[str]:
    """Distinct non-empty values, longest first, so one containing another is hidden whole."""
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret value replaced by ``<secret_hidden>``."""
    return str(_mask_value(text, _ordered(secrets)))


def _mask_value(value: Any, secrets: list[str]) -> Any:
    """``value`` with every secret hidden (the same object when it holds none)."""
    if isinstance(value, str):
        for secret in secrets:
            if len(secret) >= MIN_SUBSTRING_SECRET:
                if secret in value:
                    value = value.replace(secret, SECRET_PLACEHOLDER)
            elif value == secret:
                return SECRET_PLACEHOLDER
        return value
    if isinstance(value, dict):
        pairs = [(k, v, _mask_value(v, secrets)) for k, v in value.items()]
        if all(v is masked for _k, v, masked in pairs):
            return value
        return {k: masked for k, _v, masked in pairs}
    if isinstance(value, list):
        items = [_mask_value(v, secrets) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def mask_secrets(event: Event, secrets: Iterable[str]) -> Event:
    """Replace every secret value in the event's strings with ``<secret_hidden>``.

    Longer secrets are replaced first so that one secret containing another is hidden whole.
    An event that holds no secret (and nothing :func:`storable` would replace) is returned
    as it is: parsing its wire form again would make an equal copy, and a loop's events each
    kept a copy of everything they carry (the ``llm_metrics`` call lists above all), which
    made the heap the garbage collector walks several times larger under load.
    """
    values = _ordered(secrets)
    if not values:
        return event
    data = event.to_wire()
    masked = {k: v if k in _TOP_LEVEL_KEPT else _mask_value(v, values) for k, v in data.items()}
    if all(masked[k] is v for k, v in data.items()) and storable(data) is data:
        return event
    return Event.from_wire(masked)
