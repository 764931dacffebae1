"""configure_logging(): called once, by the entry point."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # litellm may echo request bodies, and the database drivers log bound SQL parameters
    # (saved tokens and keys among them) at DEBUG: keep all of them to warnings.
    for noisy in ("LiteLLM", "litellm", "httpx", "aiosqlite", "asyncpg", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
