"""``convo doctor``: one line per thing a conversation needs, each ok or what to do."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import typer

from convo.cli import server_file
from convo.cli.context import cli_context
from convo.cli.errors import CliError, ExitCode, load_settings
from convo.config import Settings

MIN_FREE_BYTES = 1 << 30


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    text: str


async def check_database(settings: Settings) -> Check:
    from convo.cli.errors import hide_password
    from convo.cli.server import preflight

    running = await asyncio.to_thread(server_file.running_server, settings.resolved_data_dir())
    if running is not None:
        return Check("database", True, f"in use by the server at {running.url}")
    try:
        await preflight(settings)
    except CliError as exc:
        return Check("database", False, str(exc))
    return Check("database", True, hide_password(settings.resolved_database_url()))


def check_disk(settings: Settings) -> Check:
    data_dir = settings.resolved_data_dir()
    probe = data_dir if data_dir.exists() else Path(tempfile.gettempdir())
    free = shutil.disk_usage(probe).free
    text = f"{free / (1 << 30):.1f} GB free in {probe}"
    if free < MIN_FREE_BYTES:
        return Check("disk", False, f"{text}; free some space (workspaces need room)")
    return Check("disk", True, text)


async def check_llm(settings: Settings) -> Check:
    from convo.cli.server import open_configured_storage
    from convo.llm.base import LLMConfig
    from convo.llm.select import LLMClients

    storage = open_configured_storage(settings)
    try:
        saved = await storage.settings.load_settings(None)
    finally:
        await storage.aclose()
    model = (saved.llm_model if saved else None) or settings.llm_model
    if not model:
        return Check(
            "LLM",
            False,
            "no model configured: set CONVO_LLM_MODEL and CONVO_LLM_API_KEY (or try "
            "`convo run --demo`)",
        )
    key = settings.llm_api_key
    if saved is not None and saved.llm_api_key:
        from pydantic import SecretStr

        key = SecretStr(saved.llm_api_key)
    config = LLMConfig(
        model=model,
        base_url=(saved.llm_base_url if saved else None) or settings.llm_base_url,
        api_key=key,
        timeout_seconds=min(settings.llm_timeout_seconds, 30.0),
        num_retries=0,
    )
    clients = LLMClients()
    started = time.monotonic()
    try:
        client = clients(config)
        await client.complete([{"role": "user", "content": "Reply with the word: ok"}], [])
    except Exception as exc:  # LLMError, by the client's contract; anything else is shown too
        return Check(
            "LLM",
            False,
            f"{model} did not answer: {exc}; check CONVO_LLM_MODEL, CONVO_LLM_API_KEY and "
            "CONVO_LLM_BASE_URL (or the saved settings)",
        )
    finally:
        await clients.aclose()
    return Check("LLM", True, f"{model} answered in {time.monotonic() - started:.1f} s")


_PROBE = (
    'for host in 127.0.0.1 10.0.2.2; do timeout 3 bash -c "exec 3<>/dev/tcp/$host/{port}" '
    "2>/dev/null && echo reached-$host; done; cat /proc/net/dev"
)


async def check_sandbox(settings: Settings) -> list[Check]:
    """Run a command in a real sandbox: it must work, and reach this host's loopback only
    when CONVO_SANDBOX_NETWORK=host (a listener on 127.0.0.1 here is the probe's target)."""
    from convo.runtime.base import SandboxSpec
    from convo.runtime.select import choose_sandbox_factory

    factory = await asyncio.to_thread(
        choose_sandbox_factory, settings.runtime, network=settings.sandbox_network
    )
    listener = await asyncio.start_server(_close_at_once, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        with tempfile.TemporaryDirectory(prefix="convo-doctor-") as workspace:
            sandbox = factory.create(
                SandboxSpec(conversation_id="doctor", workspace=Path(workspace))
            )
            try:
                await sandbox.start()
                result = await sandbox.run(_PROBE.format(port=port), timeout=30)
            except Exception as exc:
                return [Check("sandbox", False, f"{factory.name} runtime cannot run: {exc}")]
            finally:
                await sandbox.close()
    finally:
        listener.close()
    if factory.name == "process":
        sandbox_check = Check(
            "sandbox",
            False,
            "commands run UNCONFINED on this host (runtime process); install bubblewrap "
            "(make system-deps) and set CONVO_RUNTIME=auto",
        )
    else:
        sandbox_check = Check("sandbox", True, "bubblewrap confines agent commands")
    reached = "reached-" in result.output
    interfaces = [
        line.split(":", 1)[0].strip() for line in result.output.splitlines() if ":" in line
    ]
    outside = [name for name in interfaces if name and name != "lo" and "|" not in name]
    return [sandbox_check, network_check(settings, factory.name, reached, outside)]


async def _close_at_once(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def network_check(
    settings: Settings, runtime: str, reached_host: bool, interfaces: list[str]
) -> Check:
    """What agent commands can reach, against what CONVO_SANDBOX_NETWORK asks for."""
    wanted = settings.sandbox_network
    if runtime == "process":
        return Check("network", wanted == "host", "agent commands use this host's network")
    if wanted == "host":
        return Check(
            "network",
            True,
            "agent commands use this host's network, its services included "
            "(CONVO_SANDBOX_NETWORK=host; isolated keeps them off this host)",
        )
    if reached_host:
        return Check(
            "network",
            False,
            f"agent commands reach this host's loopback although CONVO_SANDBOX_NETWORK={wanted}; "
            "run `make system-deps` (slirp4netns) and check the sandbox set-up",
        )
    if wanted == "none" and interfaces:
        return Check("network", False, f"agent commands have interfaces {interfaces} (none wanted)")
    reach = "no network" if wanted == "none" else "the outside world only, not this host"
    return Check("network", True, f"agent commands reach {reach} (CONVO_SANDBOX_NETWORK={wanted})")


def check_server(settings: Settings) -> Check:
    running = server_file.running_server(settings.resolved_data_dir())
    if running is None:
        return Check("server", True, "none running on this data dir (`convo serve` starts one)")
    return Check("server", True, f"running at {running.url} (pid {running.pid})")


async def run_checks(settings: Settings) -> list[Check]:
    checks = [check_disk(settings), await check_database(settings)]
    if checks[-1].ok:
        checks.append(await check_llm(settings))
    checks.extend(await check_sandbox(settings))
    checks.append(await asyncio.to_thread(check_server, settings))
    return checks


def doctor(ctx: typer.Context) -> None:
    """Check the database, the LLM (with a tiny call), the sandbox and its network, and the
    disk: each line is ok, or says what to do."""
    from rich.console import Console
    from rich.text import Text

    from convo.log_config import configure_logging

    configure_logging("debug" if cli_context(ctx).debug else "error")  # the lines say it all

    settings = load_settings()
    console = Console(highlight=False, soft_wrap=True)
    checks = asyncio.run(run_checks(settings))
    for check in checks:
        mark = ("ok  ", "green") if check.ok else ("fix ", "red")
        console.print(Text.assemble(mark, (f"{check.name:<9}", "bold"), " ", check.text))
    if not all(check.ok for check in checks):
        raise typer.Exit(ExitCode.ERROR)
