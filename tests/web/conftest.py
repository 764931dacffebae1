"""Web page fixtures: a real ``convo serve`` with the scripted LLM server, and Debian's
Chromium driven by Playwright (never a browser Playwright downloads).

Chromium missing is an error, not a skip: ``make system-deps`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bench.harness import ConvoServer, ScriptedLLMProcess
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# CONVO_UPDATE_SCREENSHOTS=1: the tests also write their screenshots to docs/screenshots/.
UPDATE_SCREENSHOTS = os.environ.get("CONVO_UPDATE_SCREENSHOTS") == "1"

# a loaded two-core machine runs the server, the LLM, the browser and other tests at once:
# every wait on the page is bounded by this, not by Playwright's 5 s default
expect.set_options(timeout=30_000)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Console:
    """What the page reported: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (Debian package chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield launched
        finally:
            await launched.close()


PageFactory = Callable[..., Any]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[Callable[..., Any]]:
    """``await open_page(viewport)`` -> (page, console); contexts are closed afterwards."""
    contexts = []

    async def factory(viewport: dict[str, int] = DESKTOP) -> tuple[Page, Console]:
        context = await browser.new_context(viewport=viewport, service_workers="block")
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(30_000)
        console = Console()
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)
        return page, console

    try:
        yield factory
    finally:
        for context in contexts:
            await context.close()


@dataclass
class Served:
    server: ConvoServer
    llm: ScriptedLLMProcess

    @property
    def base_url(self) -> str:
        return self.server.base_url


ServeFactory = Callable[..., Any]


@pytest.fixture
async def convo(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await convo(steps, **settings)``: the scripted LLM and a ``convo serve`` using it."""
    started: list[Served] = []

    async def factory(steps: list[dict[str, Any]], **settings: str) -> Served:
        workdir = tmp_path / f"run{len(started)}"
        llm = await ScriptedLLMProcess(
            workdir / "llm",
            steps,
            when_exhausted={"tool": "finish", "arguments": {"message": "Nothing left to do."}},
        ).start()
        server = ConvoServer(
            workdir,
            {
                "data_dir": str(workdir / "data"),
                "llm_model": "openai/scripted",
                "llm_base_url": llm.base_url,
                "llm_api_key": "scripted-key-0123",
                "runtime": "process",
                **settings,
            },
        )
        served = Served(server, llm)
        started.append(served)
        await server.start()
        return served

    try:
        yield factory
    finally:
        for served in started:
            await served.server.terminate(timeout=30)
            await served.llm.stop()


async def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """A PNG of the page in tmp_path (and in docs/screenshots with CONVO_UPDATE_SCREENSHOTS=1)."""
    path = tmp_path / name
    await page.screenshot(path=str(path))
    assert path.stat().st_size > 5_000  # a real picture, not a blank page
    if UPDATE_SCREENSHOTS:
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / name)
    return path
