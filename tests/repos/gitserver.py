"""A git server on 127.0.0.1 that wants a token: ``git http-backend`` as CGI behind a tiny
HTTP server (a thread) that checks HTTP Basic credentials first, and bare repositories
made in a temporary directory."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def git_env(home: Path) -> dict[str, str]:
    """A clean environment for test-side git: no global or system config of the host."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def git(cwd: Path, *args: str, home: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(home), capture_output=True, text=True, check=True
    )
    return done.stdout


def make_bare_repository(
    root: Path, name: str, files: dict[str, str], branches: dict[str, dict[str, str]]
) -> Path:
    """``root/name.git`` with ``files`` on main and each branch adding its own files."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    bare = root / "repos" / f"{name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "--bare", "-b", "main", str(bare), home=home)
    work = root / "work" / name
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main", home=home)
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    git(work, "add", "-A", home=home)
    git(work, "commit", "-q", "-m", "initial", home=home)
    git(work, "push", "-q", str(bare), "main", home=home)
    for branch, extra in branches.items():
        git(work, "checkout", "-q", "-b", branch, "main", home=home)
        for path, text in extra.items():
            (work / path).write_text(text)
        git(work, "add", "-A", home=home)
        git(work, "commit", "-q", "-m", f"on {branch}", home=home)
        git(work, "push", "-q", str(bare), branch, home=home)
    return bare


@dataclass
class GitServer:
    """Serves ``project_root`` over smart HTTP; every request needs ``token`` in Basic auth
    (as the user name, GitHub style, or as the password, GitLab/Bitbucket style)."""

    project_root: Path
    token: str
    authorizations: list[str] = field(default_factory=list)  # decoded "user:password" seen
    refused: int = 0
    port: int = 0
    # the provider API's ``GET /repos/{owner}/{repo}`` accepts any token (as a token that
    # may read a repository's metadata but not clone it)
    api_accepts_any_token: bool = False
    api_requests: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api_answer(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        """GitHub's ``GET /repos/{owner}/{repo}`` for the repositories served."""
        self.api_requests.append(path)
        bearer = (authorization or "").removeprefix("Bearer ")
        name = path.removeprefix("/repos/")
        if bearer != self.token and not self.api_accepts_any_token:
            return 401, b'{"message": "Bad credentials"}'
        if (self.project_root / f"{name}.git").is_dir():
            return 200, b'{"id": 1, "full_name": "%s"}' % name.encode()
        return 404, b'{"message": "Not Found"}'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return False
                decoded = base64.b64decode(header[6:]).decode()
                server.authorizations.append(decoded)
                user, _, password = decoded.partition(":")
                return server.token in (user, password)

            def _api(self) -> None:
                status, body = server.api_answer(self.path, self.headers.get("Authorization"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                if self.command == "GET" and self.path.startswith("/repos/"):
                    self._api()
                    return
                if not self._authorized():
                    server.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                env = {
                    "GIT_PROJECT_ROOT": str(server.project_root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": "tester",
                    "REMOTE_ADDR": "127.0.0.1",
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(server.project_root),
                    "GIT_CONFIG_NOSYSTEM": "1",
                }
                done = subprocess.run(
                    [HTTP_BACKEND], input=body, env=env, capture_output=True, check=False
                )
                head, _, payload = done.stdout.partition(b"\r\n\r\n")
                status = 200
                headers: list[tuple[str, str]] = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _serve
            do_POST = _serve

        return Handler

    @contextmanager
    def running(self) -> Iterator[GitServer]:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, name="test-git-server", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)
