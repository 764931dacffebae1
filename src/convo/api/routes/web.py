"""The web page at ``/``: static files shipped in the ``convo.web`` package, no build step.

``GET /`` serves ``index.html``; ``GET /web/{name}`` serves the page's scripts and styles.
Only the files present in the package when the server starts are served (a fixed name ->
file map, so no path from a request ever reaches the file system), each with its content
type and headers that keep anything an agent wrote from running as script: a strict
Content-Security-Policy (scripts and styles from this origin only, no inline script, no
framing), ``nosniff`` and no referrer. The page itself needs no session key; every
``/api`` call it makes does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from convo import __version__
from convo.api.deps import SettingsDep

router = APIRouter(tags=["web"], include_in_schema=False)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # the page is small and changes with each release: always revalidate
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str


@cache
def web_files() -> dict[str, StaticFile]:
    """The page's files by name, read once from the installed package."""
    files: dict[str, StaticFile] = {}
    for entry in resources.files("convo.web").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = StaticFile(entry.read_bytes(), CONTENT_TYPES[suffix])
    return files


def _serve(name: str) -> Response:
    found = web_files().get(name)
    if found is None:
        return JSONResponse({"detail": "Not Found"}, status_code=404, headers=SECURITY_HEADERS)
    return Response(found.body, media_type=found.content_type, headers=SECURITY_HEADERS)


@router.get("/")
async def index() -> Response:
    return _serve("index.html")


@router.get("/web/server.json")
async def server_info(settings: SettingsDep) -> JSONResponse:
    """What the page needs before its first /api call: whether to ask for the session key
    (any /api call would tell as much with a 401)."""
    body = {"session_key_required": settings.session_api_key is not None, "version": __version__}
    return JSONResponse(body, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


@router.get("/web/{name}")
async def web_file(name: str) -> Response:
    return _serve(name)
