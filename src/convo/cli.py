"""The ``convo`` command: serve, migrate, check-config. Builds Settings and nothing else."""

from __future__ import annotations

import asyncio
import json
import socket

import typer

from convo.config import Settings, remote_bind_refusal

app = typer.Typer(add_completion=False, help="convo: an agent conversation server.")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(3000, help="Port to listen on."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run the HTTP server. SIGTERM or SIGINT shut it down gracefully within
    CONVO_SHUTDOWN_GRACE_SECONDS; its running conversations resume on the next start."""
    import uvicorn

    from convo.api.app import begin_shutdown, create_asgi_app, fastapi_app
    from convo.log_config import configure_logging

    configure_logging(log_level)
    settings = Settings()
    refusal = remote_bind_refusal(settings, host)
    if refusal is not None:
        typer.echo(f"convo: {refusal}", err=True)
        raise typer.Exit(2)
    asgi_app = create_asgi_app(settings)
    fastapi = fastapi_app(asgi_app)

    class GracefulServer(uvicorn.Server):
        """Begins the app's shutdown as the signal arrives, alongside uvicorn's own
        connection draining rather than after it."""

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            begin_shutdown(fastapi)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        asgi_app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
    )
    GracefulServer(config).run()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date, then exit."""
    from convo.storage import open_storage
    from convo.storage.at_rest import load_sealer, prepare_data_dir

    settings = Settings()

    async def run() -> None:
        data_dir = settings.resolved_data_dir()
        prepare_data_dir(data_dir)
        key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
        storage = open_storage(settings.resolved_database_url(), load_sealer(data_dir, key))
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
