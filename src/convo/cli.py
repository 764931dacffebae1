"""The ``convo`` command: serve, migrate, check-config. Builds Settings and nothing else."""

from __future__ import annotations

import asyncio
import json

import typer

from convo.config import Settings

app = typer.Typer(add_completion=False, help="convo: an agent conversation server.")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(3000, help="Port to listen on."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run the HTTP server."""
    import uvicorn

    from convo.api.app import create_asgi_app
    from convo.log_config import configure_logging

    configure_logging(log_level)
    settings = Settings()
    uvicorn.run(
        create_asgi_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=30,
    )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date, then exit."""
    from convo.storage import open_storage

    settings = Settings()

    async def run() -> None:
        settings.resolved_data_dir().mkdir(parents=True, exist_ok=True)
        storage = open_storage(settings.resolved_database_url())
        try:
            await storage.migrate()
        finally:
            await storage.aclose()

    asyncio.run(run())
    typer.echo("database is up to date")


@app.command("check-config")
def check_config() -> None:
    """Print the effective configuration (secrets hidden)."""
    settings = Settings()
    typer.echo(json.dumps(json.loads(settings.model_dump_json()), indent=2))


def main() -> None:
    app()
