"""The terminal client: ``convo run``, ``tail``, ``ls``, ``stop`` and ``rm``.

Each talks to a server over HTTP (see :mod:`convo.cli.connect` for which one). ``run`` and
``tail`` end with the exit codes of :class:`convo.cli.errors.ExitCode`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from convo.cli.context import cli_context
from convo.cli.errors import CliError, ExitCode, load_settings

if TYPE_CHECKING:  # the HTTP client and the renderer load with the command that uses them
    from convo.cli.client import ConvoClient
    from convo.cli.render import Printer

T = TypeVar("T")

SERVER_HELP = (
    "The convo server's URL (default: the server running on CONVO_DATA_DIR, else one started "
    "for this command)."
)
ServerOption = typer.Option(None, "--server", help=SERVER_HELP)
JsonOption = typer.Option(False, "--json", help="One JSON event per line, for scripts.")


def _quiet_logs(ctx: typer.Context) -> None:
    from convo.log_config import configure_logging

    configure_logging("debug" if cli_context(ctx).debug else "warning")


def _with_client(
    server: str | None, work: Callable[[ConvoClient], Awaitable[T]], model: str | None = None
) -> T:
    from convo.cli.connect import connect

    settings = load_settings()

    async def main() -> T:
        async with connect(settings, server, model=model) as client:
            return await work(client)

    return asyncio.run(main())


def _printer(as_json: bool) -> Printer:
    from convo.cli.render import EventPrinter, JsonPrinter

    return JsonPrinter() if as_json else EventPrinter()


def run(
    ctx: typer.Context,
    task: str = typer.Argument(..., help="What the agent should do."),
    server: str | None = ServerOption,
    model: str | None = typer.Option(
        None, "--model", help="The LLM for this run (a server started for it uses it)."
    ),
    repo: str | None = typer.Option(None, "--repo", help="Clone owner/name into the workspace."),
    as_json: bool = JsonOption,
    demo: bool = typer.Option(
        False, "--demo", help="Use convo's built-in demo model: no LLM key needed."
    ),
) -> None:
    """Start a conversation with TASK and follow it live until the agent finishes.

    Exit status: 0 finished, 1 error, 2 bad usage or configuration, 3 stopped (Ctrl-C stops
    the conversation), 4 the agent awaits your input, 5 server unreachable.
    """
    from convo.cli.client import ApiError
    from convo.cli.connect import model_option
    from convo.cli.follow import follow_or_stop

    chosen_model = model_option(demo, model)
    _quiet_logs(ctx)
    printer = _printer(as_json)

    async def work(client: ConvoClient) -> ExitCode:
        try:
            conversation_id = await client.create(task, repo)
        except ApiError as exc:
            if exc.status_code == 400 and "LLM" in str(exc):
                raise CliError(f"{exc} (or try `convo run --demo`)") from exc
            raise
        printer.note(f"conversation {conversation_id} on {client.base_url}")
        code = await follow_or_stop(client, conversation_id, printer)
        if client.owned_server and code not in (ExitCode.STOPPED, ExitCode.INTERRUPTED):
            # the server ends with this command: stopped, the conversation is not resumed by
            # the next server on this data dir (a new message starts it again)
            try:
                await client.stop(conversation_id)
            except ApiError as exc:
                printer.note(f"could not stop the conversation as the server ends: {exc}")
        return code

    raise typer.Exit(_with_client(server, work, chosen_model))


def tail(
    ctx: typer.Context,
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    after: int = typer.Option(
        -1, "--after", help="Show only events after this event id (to resume)."
    ),
    server: str | None = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a conversation's events and follow it live until the agent rests (Ctrl-C only
    stops following). Exit status as for run."""
    from convo.cli.follow import follow_or_stop

    _quiet_logs(ctx)
    printer = _printer(as_json)

    async def work(client: ConvoClient) -> ExitCode:
        info = await client.get(conversation_id)
        running = info.get("status") in ("RUNNING", "STARTING")
        latest = await client.latest_event_id(conversation_id)
        if not running and latest <= after:
            printer.note(f"conversation {conversation_id} is stopped, with no newer events")
            return ExitCode.STOPPED
        return await follow_or_stop(
            client,
            conversation_id,
            printer,
            after=after,
            settled_after=latest,
            running=running,
            stop_on_interrupt=False,
        )

    raise typer.Exit(_with_client(server, work))


def _age(info: dict[str, Any]) -> str:
    stamp = info.get("last_updated_at") or info.get("created_at")
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return "?"
    seconds = max(0.0, (datetime.now(UTC) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def ls(
    ctx: typer.Context,
    server: str | None = ServerOption,
    as_json: bool = typer.Option(False, "--json", help="The server's JSON."),
) -> None:
    """List conversations: id, status, agent state, age, title."""
    from rich.console import Console
    from rich.table import Table

    _quiet_logs(ctx)
    conversations = _with_client(server, lambda client: client.list())
    if as_json:
        typer.echo(json.dumps(conversations, indent=2))
        return
    if not conversations:
        typer.echo('no conversations yet: start one with convo run "TASK"')
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "STATUS", "AGENT", "AGE", "TITLE"):
        table.add_column(column, no_wrap=column != "TITLE")
    for info in conversations:
        table.add_row(
            str(info.get("conversation_id")),
            str(info.get("status", "")),
            str(info.get("agent_state") or "-"),
            _age(info),
            str(info.get("title", "")),
        )
    Console(highlight=False).print(table)


def stop(
    ctx: typer.Context,
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    server: str | None = ServerOption,
) -> None:
    """Stop a conversation's agent (its events and workspace stay)."""
    _quiet_logs(ctx)
    _with_client(server, lambda client: client.stop(conversation_id))
    typer.echo(f"stopped {conversation_id}")


def rm(
    ctx: typer.Context,
    conversation_id: str = typer.Argument(..., help="The conversation's id."),
    server: str | None = ServerOption,
) -> None:
    """Delete a conversation: its events and its workspace."""
    _quiet_logs(ctx)
    if not _with_client(server, lambda client: client.delete(conversation_id)):
        raise CliError(f"conversation {conversation_id} was not deleted", ExitCode.ERROR)
    typer.echo(f"deleted {conversation_id}")


def register(app: typer.Typer) -> None:
    for command in (run, tail, ls, stop, rm):
        app.command()(command)
