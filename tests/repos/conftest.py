"""Repository fixtures: a token-protected git server with one repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.repos.gitserver import GitServer, make_bare_repository

TOKEN = "ghp_Secret0123456789abcdef"

REPO_FILES = {
    "README.md": "A project.\n",
    "AGENTS.md": "Run `make check` before every commit.\n",
    ".openhands/setup.sh": "echo SETUP-OUTPUT\ntouch setup-ran.marker\n",
    ".openhands/microagents/repo.md": "---\nname: repo\n---\nThe code lives in src/.\n",
    ".openhands/microagents/deploy.md": (
        "---\nname: deploy\ntriggers:\n- deploy\n---\nDeploy with `make release`.\n"
    ),
}


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    root = tmp_path / "git"
    make_bare_repository(root, "owner/repo", REPO_FILES, {"feature": {"feature.txt": "new\n"}})
    server = GitServer(root / "repos", TOKEN)
    with server.running():
        yield server
