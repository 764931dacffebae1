"""Durable state: conversations, events, settings and secrets.

    storage = open_storage("sqlite+aiosqlite:///path/convo.db")
    await storage.migrate()      # idempotent; run on every start
    ...
    await storage.aclose()

SQLAlchemy is imported only when ``open_storage`` is called, so importing the protocols in
``convo.storage.base`` (or ``convo.storage.memory``) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convo.storage.at_rest import Sealer
    from convo.storage.engine import EngineOptions
    from convo.storage.sql import SqlStorage

__all__ = ["open_storage"]


def open_storage(
    url: str, sealer: Sealer | None = None, options: EngineOptions | None = None
) -> SqlStorage:
    """SQL storage for ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://...`` URLs.

    ``sealer`` (``convo.storage.at_rest.load_sealer``) seals secrets at rest; a server always
    passes one, tools reading only conversations may leave it out (secrets are then stored
    and read as plain JSON). ``options``: pool and timeouts. The schema is not touched until
    ``await storage.migrate()``.
    """
    from convo.storage.sql import SqlStorage

    return SqlStorage.from_url(url, sealer, options)
