"""The ``convo`` command: the server (serve, migrate, check-config, doctor) and a terminal
client for it (run, tail, ls, stop, rm). The only place besides ``api`` that builds Settings
and chooses implementations.

Errors end the command with one or two readable lines (see :mod:`convo.cli.errors` for the
exit codes); ``--debug`` or ``CONVO_LOG_LEVEL=debug`` adds the traceback.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click
import typer

from convo.cli import config_commands, conversation_commands, server_commands
from convo.cli.context import CliContext
from convo.cli.errors import CliError, ExitCode, debug_from_environment

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="convo: an agent conversation server, and a terminal client for it.",
)


@app.callback()
def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks and debug logs (or CONVO_LOG_LEVEL=debug)."
    ),
) -> None:
    """convo: an agent conversation server, and a terminal client for it."""


server_commands.register(app)
conversation_commands.register(app)
config_commands.register(app)


def _split_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """``--debug`` is accepted anywhere before a ``--``."""
    args, debug, literal = [], False, False
    for arg in argv:
        if arg == "--" or literal:
            literal = True
        elif arg == "--debug":
            debug = True
            continue
        args.append(arg)
    return args, debug


def main(argv: Sequence[str] | None = None) -> None:
    args, debug = _split_debug(sys.argv[1:] if argv is None else argv)
    debug = debug or debug_from_environment()
    try:
        result = app(args=args, prog_name="convo", standalone_mode=False, obj=CliContext(debug))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        print("convo: interrupted", file=sys.stderr)
        sys.exit(ExitCode.INTERRUPTED)
    except CliError as exc:
        if debug:
            traceback.print_exc()
        print(f"convo: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        print(
            f"convo: unexpected error: {type(exc).__name__}: {exc}\n"
            "run it again with --debug to see the traceback",
            file=sys.stderr,
        )
        sys.exit(ExitCode.ERROR)
    sys.exit(result if isinstance(result, int) else 0)
