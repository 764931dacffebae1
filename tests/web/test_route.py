"""The page's files as the server sends them: content types, headers that keep agent output
from running as script, nothing outside the shipped files, no key needed for the page."""

from __future__ import annotations

import re
from pathlib import Path

from convo.api.routes.web import web_files
from tests.api.conftest import make_settings, serve


async def test_the_page_and_its_files_are_served_with_their_types(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path)) as server:
        client = server.client
        index = await client.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script type="module" src="/web/app.js">' in index.text
        csp = index.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        assert index.headers["x-content-type-options"] == "nosniff"
        assert index.headers["referrer-policy"] == "no-referrer"

        for name, content_type in [
            ("app.js", "text/javascript; charset=utf-8"),
            ("api.js", "text/javascript; charset=utf-8"),
            ("sse.js", "text/javascript; charset=utf-8"),
            ("render.js", "text/javascript; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
        ]:
            response = await client.get(f"/web/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == content_type
            assert response.headers["content-security-policy"] == csp

        for path in ["/web/__init__.py", "/web/..%2Fconfig.py", "/web/missing.js", "/web/"]:
            assert (await client.get(path)).status_code == 404, path
        info = (await client.get("/web/server.json")).json()
        assert info["session_key_required"] is False


async def test_the_page_is_open_and_says_a_key_is_needed(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path, session_api_key="k-123456")) as server:
        assert (await server.client.get("/")).status_code == 200
        assert (await server.client.get("/web/app.js")).status_code == 200
        info = (await server.client.get("/web/server.json")).json()
        assert info == {"session_key_required": True, "version": info["version"]}
        assert "k-123456" not in str(info)
        assert (await server.client.get("/api/conversations")).status_code == 401


def test_every_module_the_page_imports_is_shipped() -> None:
    files = web_files()
    assert {"index.html", "app.js", "api.js", "sse.js", "render.js", "style.css"} <= set(files)
    imported = set()
    for name, shipped in files.items():
        if name.endswith(".js"):
            for module in re.findall(r'from "\./([^"]+)"', shipped.body.decode()):
                imported.add(module)
                assert module in files, f"{name} imports {module}, which is not shipped"
    assert {"api.js", "sse.js", "render.js"} <= imported


def test_no_event_content_is_written_as_markup() -> None:
    """The agent is an adversary: the page builds its DOM with textContent only."""
    for name, shipped in web_files().items():
        if name.endswith(".js"):
            source = shipped.body.decode()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in source, f"{name} uses {sink}"
