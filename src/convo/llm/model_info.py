"""What is known of a model: prices and context window, read from litellm's price map as data.

litellm ships its price map as a JSON file (``model_prices_and_context_window_backup.json``).
It is read here without importing litellm (seconds of CPU and about 150 MB) and never fetched
from the network. One model's entry is cut out of the text and decoded alone, so a lookup
never builds the whole 3 MB map in memory; results are cached per model name.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True)
class ModelInfo:
    provider: str | None = None  # litellm's provider name, e.g. "openai"
    input_cost_per_token: float = 0.0
    output_cost_per_token: float = 0.0
    cache_read_input_token_cost: float | None = None
    max_input_tokens: int | None = None
    supports_vision: bool = False

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """USD for one call; cached prompt tokens at their own price where the map has one."""
        cached = min(cached_tokens, prompt_tokens) if self.cache_read_input_token_cost else 0
        return (
            (prompt_tokens - cached) * self.input_cost_per_token
            + cached * (self.cache_read_input_token_cost or 0.0)
            + completion_tokens * self.output_cost_per_token
        )


def price_map_path() -> Path | None:
    """The price map litellm ships, located without importing litellm; None if absent."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / PRICE_MAP_FILE
    return path if path.is_file() else None


def _price_map_text() -> str:
    path = price_map_path()
    if path is None:
        logger.warning("litellm's price map is not available: costs and context windows unknown")
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        logger.warning("could not read litellm's price map at %s", path)
        return ""


def _entry(text: str, name: str) -> dict[str, Any] | None:
    """The JSON object stored under the top-level key ``name``, decoded alone."""
    key = json.dumps(name) + ":"
    at = text.find(key)
    while at != -1:
        line_start = text.rfind("\n", 0, at) + 1
        value_at = at + len(key)
        while value_at < len(text) and text[value_at] in " \t\r\n":
            value_at += 1
        if not text[line_start:at].strip() and text.startswith("{", value_at):
            try:
                value, _ = json.JSONDecoder().raw_decode(text, value_at)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
        at = text.find(key, at + 1)
    return None


def _candidates(model: str) -> list[str]:
    """The names a model may be listed under: as given, then without its provider prefix."""
    names = [model]
    _, sep, rest = model.partition("/")
    if sep and rest:
        names.append(rest)
    return names


@lru_cache(maxsize=64)
def lookup(model: str) -> ModelInfo | None:
    """The price map's entry for ``model`` (or its name without the provider prefix).

    Each new name reads the file again (3 MB, some milliseconds; it is not kept in memory):
    callers on the event loop use ``asyncio.to_thread``.
    """
    text = _price_map_text()
    if not text:
        return None
    for name in _candidates(model):
        entry = _entry(text, name)
        if entry is not None:
            return _info(entry)
    return None


def _info(entry: dict[str, Any]) -> ModelInfo:
    window = entry.get("max_input_tokens") or entry.get("max_tokens")
    cache_read = entry.get("cache_read_input_token_cost")
    return ModelInfo(
        provider=str(entry["litellm_provider"]) if entry.get("litellm_provider") else None,
        input_cost_per_token=float(entry.get("input_cost_per_token") or 0.0),
        output_cost_per_token=float(entry.get("output_cost_per_token") or 0.0),
        cache_read_input_token_cost=float(cache_read) if cache_read is not None else None,
        max_input_tokens=int(window) if isinstance(window, int | float) and window else None,
        supports_vision=entry.get("supports_vision") is True,
    )


def context_window(model: str) -> int | None:
    """The model's input window in tokens, if the price map knows it."""
    info = lookup(model)
    return info.max_input_tokens if info is not None else None


def accepts_images(model: str) -> bool:
    """Whether to send a user's images to ``model`` as image parts: yes where the price map
    says it supports vision, and for a model it does not list (a local or proxied one, whose
    endpoint decides); no for a listed model without vision."""
    info = lookup(model)
    return info is None or info.supports_vision


def known_chat_models() -> tuple[str, ...]:
    """Every chat model the price map lists, sorted (parses the whole map: call it rarely)."""
    text = _price_map_text()
    if not text:
        return ()
    try:
        data: dict[str, Any] = json.loads(text)
    except ValueError:
        logger.warning("litellm's price map is not valid JSON")
        return ()
    return tuple(
        sorted(
            name
            for name, spec in data.items()
            if name != "sample_spec"
            and isinstance(spec, dict)
            and spec.get("mode") in ("chat", "responses", None)
        )
    )
