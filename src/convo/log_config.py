"""configure_logging(): called once, by the entry point.

convo's own loggers log at the level asked; libraries only from WARNING up (their INFO
lines at start-up, such as alembic's plugin list or uvicorn's banner, say nothing a person
needs), except at DEBUG where the server and migration libraries say more too.
"""

from __future__ import annotations

import logging

# Never below WARNING: litellm may echo request bodies, and the database drivers log bound
# SQL parameters (saved tokens and keys among them) at DEBUG.
_SECRET_BEARING = ("LiteLLM", "litellm", "httpx", "httpcore", "aiosqlite", "asyncpg", "sqlalchemy")
# Quiet unless debugging.
_CHATTY = ("alembic", "uvicorn", "uvicorn.error", "uvicorn.access", "socketio", "engineio")


def configure_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("convo").setLevel(numeric)
    for name in _SECRET_BEARING:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
