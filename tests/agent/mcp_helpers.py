"""Running tests/agent/mcp_fixture_server.py: inside a sandbox (over stdio) or on 127.0.0.1
(streamable HTTP).

A bubblewrap sandbox sees the host's /usr but not this virtualenv, so ``mcp`` and what it
needs are linked into the workspace (``.mcp``, from one copy per test session) with the
fixture server; the sandbox's ``/usr/bin/python3`` (same minor version) runs it with
``PYTHONPATH=/workspace/.mcp/site``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata as metadata
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from packaging.requirements import Requirement

FIXTURE = Path(__file__).with_name("mcp_fixture_server.py")
IN_SANDBOX = "/workspace/.mcp"


def _closure(name: str) -> set[str]:
    """The distributions ``name`` needs on this platform, itself included."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def build_site(cache: Path) -> Path:
    """A directory holding ``mcp`` and every distribution it needs, copied from here."""
    site = cache / "site"
    if site.exists():
        return site
    for name in sorted(_closure("mcp")):
        dist = metadata.distribution(name)
        for file in dist.files or []:
            if str(file).startswith(".."):
                continue  # scripts outside site-packages
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                target = site / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    return site


def stage_fixture(workspace: Path, site: Path) -> None:
    """The fixture server and its packages in ``workspace/.mcp`` (hard links)."""
    stage = workspace / ".mcp"
    shutil.copytree(site, stage / "site", copy_function=os.link, dirs_exist_ok=True)
    shutil.copy2(FIXTURE, stage / FIXTURE.name)
    for path in [stage, *stage.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def stdio_server(name: str = "fixture", **env: str) -> dict[str, object]:
    """The mcp_config entry of the fixture server staged in the sandbox's workspace."""
    return {
        "name": name,
        "command": "python3",
        "args": [f"{IN_SANDBOX}/{FIXTURE.name}", "stdio"],
        "env": {"PYTHONPATH": f"{IN_SANDBOX}/site", **env},
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def http_fixture(prefix: str = "web_", transport: str = "http") -> AsyncIterator[str]:
    """The fixture server over streamable HTTP (or ``sse``) on 127.0.0.1; yields its URL."""
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "FIXTURE_PREFIX": prefix}
    process = subprocess.Popen(
        [sys.executable, str(FIXTURE), transport, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        else:
            raise RuntimeError("the MCP fixture server did not start")
        yield f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
