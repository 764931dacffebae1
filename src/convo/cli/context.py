"""What every command gets from ``main``: the debug switch."""

from __future__ import annotations

from dataclasses import dataclass

import typer


@dataclass(frozen=True)
class CliContext:
    debug: bool = False


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_object(CliContext)
    return obj if obj is not None else CliContext()
