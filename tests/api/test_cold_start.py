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

NOT_AT_START = ["litellm", "openai", "aiohttp", "requests", "redis", "alembic", "httpx", "mcp"]


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


# What a started server (``convo serve``: the CLI, the pre-flight checks, uvicorn, the app's
# start-up) must not have imported before its first request, beyond NOT_AT_START: the
# CLI's client side (its HTTP client, SSE and terminal rendering), the secrets cipher (built
# with the first secret), Alembic's templates and the PostgreSQL dialect on SQLite.
NOT_AT_SERVE = [
    *NOT_AT_START,
    "httpx_sse",
    "rich",
    "pygments",
    "cryptography",
    "mako",
    "sqlalchemy.dialects.postgresql",
    "asyncpg",
]


def test_a_started_server_on_a_current_schema_has_imported_only_what_serving_needs(
    tmp_path: Path,
) -> None:
    settings = f"Settings(data_dir={str(tmp_path)!r}, llm_model='openai/x')"
    _run(  # a first start on a new data dir creates the schema
        f"""
        import asyncio
        from convo.cli.server import preflight
        from convo.config import Settings

        asyncio.run(preflight({settings}))
        """
    )
    out = _run(
        f"""
        import asyncio, sys, urllib.request
        import convo.cli  # what `convo serve` imports before it runs the command
        from convo.cli.server import EmbeddedServer, preflight
        from convo.config import Settings

        settings = {settings}
        asyncio.run(preflight(settings))

        async def main():
            server = EmbeddedServer(settings)
            url = await server.start()
            try:
                with urllib.request.urlopen(url + "/alive", timeout=10) as response:
                    assert response.status == 200
                with urllib.request.urlopen(url + "/api/conversations", timeout=10) as response:
                    assert response.status == 200
            finally:
                await server.stop()

        asyncio.run(main())
        print(sorted(m for m in {NOT_AT_SERVE!r} if m in sys.modules))
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
