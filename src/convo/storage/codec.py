"""How domain records are stored: conversation rows and the JSON of settings and secrets.

Shared by the SQL and in-memory stores so that both keep exactly the same shape. No I/O and
no SQLAlchemy here: the in-memory twin imports this module without pulling in a database.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from convo.domain.conversation import (
    AgentState,
    ConversationMetadata,
    ConversationTrigger,
    CustomSecret,
    ProviderToken,
    ProviderType,
    UserSecrets,
    UserSettings,
)
from convo.domain.events import AgentStateChangedObservation, Event

# ``user_id`` None (single-user mode) is stored as the empty string so it can be a key.
ANONYMOUS_USER = ""

_METADATA_FIELDS = frozenset(f.name for f in dataclasses.fields(ConversationMetadata))
UPDATABLE_FIELDS = _METADATA_FIELDS - {"conversation_id"}
_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(UserSettings))


class Row(Protocol):
    """A stored conversation row: a dict, or a SQLAlchemy RowMapping."""

    def __getitem__(self, key: str, /) -> Any: ...


def user_key(user_id: str | None) -> str:
    return user_id or ANONYMOUS_USER


def as_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def encode_page_id(offset: int) -> str:
    """The opaque page id of a search page starting at ``offset``."""
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def decode_page_id(page_id: str | None) -> int:
    """The offset a page id stands for; a missing or malformed one means the first page."""
    if not page_id:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(page_id.encode()).decode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return 0


# --- conversation metadata ---------------------------------------------------------------
def _column_value(name: str, value: Any) -> Any:
    """The stored form of one ConversationMetadata field."""
    if name == "user_id":
        return user_key(value)
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, Enum):
        return value.value
    if name == "pr_number":
        return [int(n) for n in value]
    if name == "providers_set":
        return None if value is None else [ProviderType(p).value for p in value]
    return value


def metadata_to_row(metadata: ConversationMetadata) -> dict[str, Any]:
    """Column values of a conversation row (without the ``next_event_id`` counter)."""
    return {
        f.name: _column_value(f.name, getattr(metadata, f.name))
        for f in dataclasses.fields(ConversationMetadata)
    }


def update_values(fields: Mapping[str, object]) -> dict[str, Any]:
    """Column values for a partial update; TypeError for a name that is not updatable."""
    unknown = sorted(set(fields) - UPDATABLE_FIELDS)
    if unknown:
        raise TypeError(f"Cannot update conversation field(s): {', '.join(unknown)}")
    return {name: _column_value(name, value) for name, value in fields.items()}


def metadata_from_row(row: Row) -> ConversationMetadata:
    git_provider = row["git_provider"]
    trigger = row["trigger"]
    return ConversationMetadata(
        conversation_id=row["conversation_id"],
        user_id=row["user_id"] or None,
        title=row["title"],
        selected_repository=row["selected_repository"],
        selected_branch=row["selected_branch"],
        git_provider=ProviderType(git_provider) if git_provider else None,
        trigger=ConversationTrigger(trigger) if trigger else None,
        created_at=as_utc(row["created_at"]),
        last_updated_at=as_utc(row["last_updated_at"]),
        llm_model=row["llm_model"],
        accumulated_cost=float(row["accumulated_cost"]),
        prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]),
        total_tokens=int(row["total_tokens"]),
        pr_number=[int(n) for n in row["pr_number"] or []],
        conversation_instructions=row["conversation_instructions"],
        desired_running=bool(row["desired_running"]),
        providers_set=_providers(row["providers_set"]),
        agent_state=_agent_state(row["agent_state"]),
        idempotency_key=row["idempotency_key"],
    )


def _agent_state(value: Any) -> AgentState | None:
    """A stored state; one this version does not know (a newer one wrote it) reads as None."""
    try:
        return AgentState(value) if value else None
    except ValueError:
        return None


def agent_state_of(event: Event) -> str | None:
    """The state an ``agent_state_changed`` event moves its conversation to, else None.

    Both event stores write it to the conversation row in the same step as the event, so
    the row's ``agent_state`` is always that of the last such event stored.
    """
    if not isinstance(event, AgentStateChangedObservation):
        return None
    return event.agent_state or None


def _providers(value: Any) -> list[ProviderType] | None:
    return None if value is None else [ProviderType(p) for p in value]


# --- settings and secrets ----------------------------------------------------------------
def settings_to_json(settings: UserSettings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def settings_from_json(data: Mapping[str, Any]) -> UserSettings:
    """Unknown keys (written by a newer version) are ignored."""
    known = {k: v for k, v in data.items() if k in _SETTINGS_FIELDS}
    known["extra"] = dict(known.get("extra") or {})
    return UserSettings(**known)


def secrets_to_json(secrets: UserSecrets) -> dict[str, Any]:
    return {
        "provider_tokens": {
            provider.value: dataclasses.asdict(token)
            for provider, token in secrets.provider_tokens.items()
        },
        "custom_secrets": {
            name: dataclasses.asdict(secret) for name, secret in secrets.custom_secrets.items()
        },
    }


def secrets_from_json(data: Mapping[str, Any]) -> UserSecrets:
    """Tokens of providers this version does not know are dropped."""
    known_providers = {p.value for p in ProviderType}
    tokens = {
        ProviderType(name): ProviderToken(
            token=raw["token"], host=raw.get("host"), user_id=raw.get("user_id")
        )
        for name, raw in (data.get("provider_tokens") or {}).items()
        if name in known_providers
    }
    custom = {
        name: CustomSecret(secret=raw["secret"], description=raw.get("description", ""))
        for name, raw in (data.get("custom_secrets") or {}).items()
    }
    return UserSecrets(provider_tokens=tokens, custom_secrets=custom)
