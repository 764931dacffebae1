"""Start-up imports only what the first request needs; a current schema costs one query.

Each check runs in a fresh interpreter: what a module imports is only visible there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from convo.storage.engine import alembic_config, head_revision
from convo.storage.sql import SqlStorage

NOT_AT_START = ["litellm", "openai", "aiohttp", "requests", "redis", "alembic", "httpx"]


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_app_imports_no_llm_library_no_socket_client_and_no_alembic(tmp_path: Path) -> None:
    out = _run(
        f"""
        import sys
        from convo.api.app import create_asgi_app
        from convo.config import Settings

        create_asgi_app(Settings(data_dir={str(tmp_path)!r}))
        print(sorted(m for m in {NOT_AT_START!r} if m in sys.modules))
        """
    )
    assert out == "[]"


def test_socketio_stays_complete_for_whoever_imports_it_later(tmp_path: Path) -> None:
    """The server side is imported alone; a later ``import socketio`` gets the whole package."""
    out = _run(
        f"""
        from convo.api.app import create_asgi_app, fastapi_app
        from convo.config import Settings

        app = fastapi_app(create_asgi_app(Settings(data_dir={str(tmp_path)!r})))
        import engineio, socketio
        server = app.state.socket_server.sio
        print(isinstance(server, socketio.AsyncServer), socketio.AsyncClient.__name__,
              engineio.AsyncClient.__name__, socketio.exceptions.ConnectionRefusedError.__name__)
        """
    )
    assert out == "True AsyncClient AsyncClient ConnectionRefusedError"


async def test_a_current_schema_is_checked_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'convo.db'}"
    storage = SqlStorage.from_url(url)
    try:
        await storage.migrate()  # a new database: Alembic creates the schema
    finally:
        await storage.aclose()
    out = _run(
        f"""
        import asyncio, sys
        from convo.storage.sql import SqlStorage

        async def main():
            storage = SqlStorage.from_url({url!r})
            await storage.migrate()
            await storage.aclose()

        asyncio.run(main())
        print("alembic" in sys.modules)
        """
    )
    assert out == "False"


def test_the_head_read_from_the_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
