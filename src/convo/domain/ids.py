"""Conversation ids: generated as 32 lowercase hex characters; accepted when a safe token."""

from __future__ import annotations

import re
import uuid

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_conversation_id() -> str:
    return uuid.uuid4().hex


def is_safe_conversation_id(value: str) -> bool:
    """Letters, digits, ``-`` and ``_``, at most 64: safe as a path part and a key."""
    return bool(_SAFE_ID.match(value))
