"""``convo check-config`` (the effective configuration, every secret hidden) and
``convo doctor`` (is everything a conversation needs working here?)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from pydantic import SecretStr

from convo.cli.errors import hide_password, load_settings
from convo.config import Settings

SECRET_SHOWN = "<hidden>"


def visible_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON values, with every secret hidden and URL passwords removed."""
    data: dict[str, Any] = json.loads(settings.model_dump_json())
    for name, value in data.items():
        if isinstance(getattr(settings, name, None), SecretStr):
            data[name] = SECRET_SHOWN if value else None
        elif isinstance(value, str) and "://" in value:
            data[name] = hide_password(value)
    return data


def describe_llm(model: str | None, base_url: str | None, key_set: bool, source: str) -> str:
    from convo.llm.demo import DEMO_MODEL

    if not model:
        return (
            "none configured: set CONVO_LLM_MODEL (and CONVO_LLM_API_KEY), save settings on "
            "the server, or try `convo run --demo`"
        )
    if model == DEMO_MODEL:
        return f"{DEMO_MODEL}: convo's built-in scripted demo model, no key needed ({source})"
    where = f" at {hide_password(base_url)}" if base_url else ""
    key = "key set" if key_set else "no key set"
    return f"{model}{where}, {key} ({source})"


async def effective_llm(settings: Settings) -> str:
    """Which LLM new conversations use: saved settings first, then CONVO_LLM_*."""
    from convo.cli.server import open_configured_storage

    saved = None
    try:
        storage = open_configured_storage(settings)
        try:
            saved = await storage.settings.load_settings(None)
        finally:
            await storage.aclose()
    except Exception:
        saved = None  # no database yet: only the environment counts
    if saved is not None and saved.llm_model:
        return describe_llm(
            saved.llm_model,
            saved.llm_base_url or settings.llm_base_url,
            bool(saved.llm_api_key or settings.llm_api_key),
            "saved settings",
        )
    return describe_llm(
        settings.llm_model,
        settings.llm_base_url,
        settings.llm_api_key is not None,
        "CONVO_LLM_MODEL",
    )


def describe_runtime(settings: Settings) -> str:
    from convo.runtime.select import choose_sandbox_factory

    factory = choose_sandbox_factory(settings.runtime, network=settings.sandbox_network)
    if factory.name == "process":
        return (
            "process: agent commands run UNCONFINED on this host; install bubblewrap and use "
            "CONVO_RUNTIME=auto or sandbox to confine them"
        )
    return (
        f"sandbox (bubblewrap), network {settings.sandbox_network} "
        f"(CONVO_RUNTIME={settings.runtime}, CONVO_SANDBOX_NETWORK)"
    )


def check_config(
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Print the effective configuration (every secret hidden), and which LLM and runtime
    will be used."""
    settings = load_settings()
    shown = visible_settings(settings)
    llm = asyncio.run(effective_llm(settings))
    runtime = describe_runtime(settings)
    database = hide_password(settings.resolved_database_url())
    if as_json:
        typer.echo(json.dumps({"llm": llm, "runtime": runtime, "settings": shown}, indent=2))
        return
    typer.echo(f"LLM:      {llm}")
    typer.echo(f"runtime:  {runtime}")
    typer.echo(f"database: {database}")
    typer.echo("settings (CONVO_*, secrets hidden):")
    typer.echo(json.dumps(shown, indent=2))


def register(app: typer.Typer) -> None:
    from convo.cli.doctor import doctor

    app.command("check-config")(check_config)
    app.command()(doctor)
