"""The web page at /, in real Chromium against a real ``convo serve`` and the scripted LLM:
start a task, follow it live, talk to it, stop it; with a session key; on a phone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.web.conftest import DESKTOP, PHONE, screenshot

pytestmark = pytest.mark.timeout(150)

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'

SCRIPT: list[dict[str, Any]] = [
    {
        "tool": "execute_bash",
        "arguments": {"command": "echo hello from the agent"},
        "content": "First, a greeting from the shell.",
    },
    {
        "tool": "str_replace_editor",
        "arguments": {
            "command": "create",
            "path": "hello.py",
            "file_text": "print('hello')\n",
        },
    },
    {
        "tool": "str_replace_editor",
        "arguments": {
            "command": "str_replace",
            "path": "hello.py",
            "old_str": "print('hello')",
            "new_str": "print('hello, world')",
        },
    },
    {"tool": "execute_bash", "arguments": {"command": "python3 hello.py"}},
    {"text": "hello.py prints hello, world."},
    # after the user's next message: a long command, stopped from the page; the agent's
    # words come with markup, which the page must show as text
    {"tool": "execute_bash", "arguments": {"command": "sleep 60"}, "content": HOSTILE},
]


async def _start_task(page: Page, task: str) -> None:
    await page.fill("#task", task)
    await page.click("#new-task button[type=submit]")
    await expect(page).to_have_url(re.compile(r"#/c/[A-Za-z0-9_-]+$"))


async def _follow_the_first_steps(page: Page) -> None:
    events = page.locator("#events")
    await expect(events.locator(".message.user")).to_contain_text("Write hello.py")
    await expect(events.locator("pre.stdout").first).to_contain_text("hello from the agent")
    await expect(events.locator(".message.agent")).to_contain_text("prints hello, world")
    await expect(page.locator("#conversation-agent-state")).to_have_text("waiting for you")


async def test_start_a_task_follow_it_live_and_stop_it(
    convo: Any, open_page: Any, tmp_path: Path
) -> None:
    served = await convo(SCRIPT)
    page, console = await open_page(DESKTOP)
    response = await page.goto(served.base_url + "/")
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    await expect(page.locator("#no-conversations")).to_be_visible()

    await _start_task(page, "Write hello.py and run it")
    await _follow_the_first_steps(page)
    events = page.locator("#events")
    # the command, its output and exit code; the edit as a diff
    await expect(events.locator("pre.command").first).to_have_text("$ echo hello from the agent")
    await expect(events.locator(".step.run .label").first).to_have_text("Command")
    await expect(events.locator(".thought").first).to_have_text("First, a greeting from the shell.")
    await expect(events.locator("pre.diff .del")).to_contain_text("-print('hello')")
    await expect(events.locator("pre.diff .add").last).to_have_text("+print('hello, world')\n")
    await expect(events.locator("pre.stdout").last).to_contain_text("hello, world")

    # the list says what happened, without opening the conversation
    item = page.locator("#conversations li").first
    await expect(item.locator(".title")).to_have_text("Write hello.py and run it")
    await expect(item).to_contain_text("RUNNING")
    await expect(item).to_contain_text("waiting for you")
    await screenshot(page, tmp_path, "desktop.png")

    # a message starts the next step, live; Stop ends it
    await page.fill("#message", "Now take a long nap")
    await page.click("#send-message button[type=submit]")
    await expect(events.locator(".message.user").last).to_have_text(
        re.compile("Now take a long nap")
    )
    await expect(events.locator("pre.command").last).to_have_text("$ sleep 60")
    await expect(page.locator("#conversation-agent-state")).to_have_text("working")
    # what the agent wrote is shown as text, never run
    await expect(events.locator(".thought").last).to_have_text(HOSTILE)
    assert await page.evaluate("window.__pwned") is None
    assert await events.locator("img, script").count() == 0
    await page.click("#conversation-stop")
    await expect(page.locator("#conversation-status")).to_have_text("STOPPED")
    await expect(page.locator("#conversation-agent-state")).to_have_text("stopped")
    await expect(page.locator("#conversation-start")).to_be_visible()
    await page.click("#conversation-start")  # on again: it waits for the next message
    await expect(page.locator("#conversation-status")).to_have_text("RUNNING")
    await expect(page.locator("#conversation-agent-state")).to_have_text("waiting for you")
    await page.fill("#message", "Wrap up")
    await page.press("#message", "Control+Enter")
    await expect(events.locator(".message.finish")).to_contain_text("Nothing left to do.")
    await expect(page.locator("#conversation-agent-state")).to_have_text("finished")

    # the server agrees
    cid = page.url.rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as client:
        info = (await client.get(f"/api/conversations/{cid}")).json()
    assert (info["status"], info["agent_state"]) == ("RUNNING", "finished")

    # delete: gone from the list
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("#conversation-delete")
    await expect(page).to_have_url(re.compile("#/$"))
    await expect(page.locator("#no-conversations")).to_be_visible()
    assert console.errors == []


async def test_settings_form_saves_the_llm_settings(convo: Any, open_page: Any) -> None:
    """The form shows and saves the settings; with confirmation on, the next task's command
    waits until it is allowed from the page."""
    served = await convo([{"tool": "execute_bash", "arguments": {"command": "echo confirmed it"}}])
    page, console = await open_page(DESKTOP)
    await page.goto(served.base_url + "/#/settings")
    form = page.locator("#settings-form")
    await expect(form.locator("input[name=llm_model]")).to_have_value("openai/scripted")
    await expect(form.locator("input[name=llm_api_key]")).to_have_attribute(
        "placeholder", re.compile("a key is saved")
    )
    await form.locator("input[name=llm_model]").fill("openai/another-model")
    await form.locator("input[name=llm_api_key]").fill("sk-new-key-123456")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#settings-result")).to_contain_text("Saved")

    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as client:
        saved = (await client.get("/api/settings")).json()
    assert saved["llm_model"] == "openai/another-model" and saved["llm_api_key_set"]
    assert "sk-new-key-123456" not in await page.content()  # the field was emptied

    await form.locator("input[name=llm_model]").fill("openai/scripted")
    await form.locator("input[name=confirmation_mode]").check()
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#settings-result")).to_contain_text("Saved")
    await _start_task(page, "Say something in the shell")
    events = page.locator("#events")
    await expect(page.locator("#confirmation")).to_be_visible()
    await expect(events.locator(".step.run .label")).to_have_text(
        "Command (waiting for your confirmation)"
    )
    assert await events.locator("pre.stdout").count() == 0  # not run yet
    await page.click("#confirm-yes")
    await expect(events.locator(".step.run .label")).to_have_text("Command (allowed)")
    await expect(events.locator("pre.stdout")).to_have_text("confirmed it")
    await expect(page.locator("#confirmation")).to_be_hidden()
    assert await events.locator(".step.run").count() == 1  # one node for both copies
    assert console.errors == []


async def test_a_session_key_is_asked_for_and_kept(
    convo: Any, open_page: Any, tmp_path: Path
) -> None:
    served = await convo(SCRIPT, session_api_key="the-session-key-42")
    page, console = await open_page(DESKTOP)
    await page.goto(served.base_url + "/")
    login = page.locator("#login")
    await expect(login).to_be_visible()

    await page.fill("#login-key", "a-wrong-key")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("refused")
    # the refused key's request is the only thing the browser reported
    assert [e for e in console.errors if "401" not in e] == []
    console.errors.clear()

    await page.fill("#login-key", "the-session-key-42")
    await page.click("#login-form button[type=submit]")
    await expect(login).to_be_hidden()
    await _start_task(page, "Write hello.py and run it")
    await _follow_the_first_steps(page)  # the event stream sends the key too

    await page.reload()
    await expect(page.locator("#events .message.agent")).to_contain_text("prints hello")
    await expect(login).to_be_hidden()  # kept in the browser
    assert console.errors == []

    await page.click("#logout")
    await expect(login).to_be_visible()
    assert await page.evaluate("window.localStorage.length") == 0


async def test_on_a_phone_and_when_the_server_goes_away_and_comes_back(
    convo: Any, open_page: Any, tmp_path: Path
) -> None:
    served = await convo(SCRIPT)
    page, console = await open_page(PHONE)
    await page.goto(served.base_url + "/")
    await _start_task(page, "Write hello.py and run it")
    await _follow_the_first_steps(page)
    await expect(page.locator("#sidebar")).to_be_hidden()  # one column: the conversation
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is wider than the phone: {width}"
    await screenshot(page, tmp_path, "phone.png")

    await page.click("#conversation .back")
    await expect(page.locator("#conversations li")).to_have_count(1)
    await expect(page.locator("#conversations li")).to_contain_text("waiting for you")
    assert console.errors == []

    await page.click("#conversations li a")
    events = page.locator("#events")
    await expect(events.locator(".message.agent")).to_have_count(1)
    shown = await events.locator("li").count()

    await served.server.terminate(timeout=30)
    banner = page.locator("#banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("cannot be reached")

    # back on the same port: the stream resumes after the last event it showed, no repeats
    await served.server.start()
    await expect(banner).to_be_hidden()
    await expect(page.locator("#conversation-live")).to_have_text("live")
    await page.fill("#message", "Now take a long nap")
    await page.click("#send-message button[type=submit]")
    await expect(events.locator("pre.command").last).to_have_text("$ sleep 60")
    assert await events.locator(".message.agent").count() == 1
    assert await events.locator(".message.user").count() == 2
    assert await events.locator("li").count() == shown + 2  # the message and the command
