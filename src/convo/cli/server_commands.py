"""``convo serve`` and ``convo migrate``."""

from __future__ import annotations

import asyncio
import gc
import logging
import os

import typer

from convo.cli.context import cli_context
from convo.cli.errors import CliError, ExitCode, load_settings
from convo.config import remote_bind_refusal

logger = logging.getLogger("convo.cli")


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(3000, help="Port to listen on."),
    log_level: str | None = typer.Option(
        None, help="debug, info, warning or error (default: CONVO_LOG_LEVEL)."
    ),
) -> None:
    """Run the HTTP server. SIGTERM or Ctrl-C stop it gracefully within
    CONVO_SHUTDOWN_GRACE_SECONDS (a second Ctrl-C at once); its running conversations resume
    on the next start."""
    # Start-up allocates much and frees little: collections during the imports below cost
    # about 7% of the cold start for nothing. ConvoServer.startup freezes what start-up made
    # and turns the collector back on (freeze_after_startup).
    gc.disable()
    from convo.cli import server_file
    from convo.cli.server import bind, make_server, preflight, url_of
    from convo.log_config import configure_logging

    debug = cli_context(ctx).debug
    settings = load_settings()
    configure_logging("debug" if debug else (log_level or settings.log_level))
    refusal = remote_bind_refusal(settings, host)
    if refusal is not None:
        raise CliError(refusal)
    asyncio.run(preflight(settings))
    sock = bind(host, port)
    url = url_of(sock)
    record = server_file.ServerRecord(url, os.getpid())
    data_dir = settings.resolved_data_dir()
    server = make_server(settings, debug=debug)
    server.freeze_after_startup = True  # this process is the server's alone
    server_file.write(data_dir, record)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C again once it has stopped gracefully
        typer.echo("convo: stopped", err=True)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        server_file.remove(data_dir, record)
        sock.close()


def migrate() -> None:
    """Bring the database schema up to date, then exit."""
    from convo.cli.server import preflight

    asyncio.run(preflight(load_settings()))
    typer.echo("database is up to date")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(migrate)
